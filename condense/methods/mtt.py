"""Trajectory matching (MTT), multi-step parameter matching.

Cazenavette et al., "Dataset Distillation by Matching Training
Trajectories", CVPR 2022; constant-memory meta-gradient after Cui et al.,
"Scaling Up Dataset Distillation to ImageNet-1K with Constant Memory"
(TESLA), ICML 2023.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from condense.augment import AugmentParams, SiameseAugment, default_strategy
from condense.checkpoint import require, set_generator_state
from condense.errors import CondenseError
from condense.experts import (
    ExpertBuffer,
    InvalidExpertBufferError,
    cache_key,
    default_cache_dir,
    train_experts,
    unflatten_parameters,
)
from condense.methods.base import Condensed, Distiller, StepBatch
from condense.real_data import RealData
from condense.registry import register
from condense.samplers import NetworkSampler

META_GRADIENTS = ("exact", "tesla", "unrolled")


@dataclass
class ExpertSegment:
    """What the expert sampler gives one step: a start point and the target ``expert_epochs`` later."""

    start: torch.Tensor
    target: torch.Tensor
    expert: int
    epoch: int


class ExpertSampler(NetworkSampler):
    """A random expert and a random start epoch in ``0 .. max_start_epoch - 1`` each step."""

    def __init__(self, buffer: ExpertBuffer, max_start_epoch: int, expert_epochs: int, device: str, generator: torch.Generator) -> None:
        if max_start_epoch < 1 or expert_epochs < 1:
            raise CondenseError(f"max_start_epoch and expert_epochs must be >= 1, got {max_start_epoch}, {expert_epochs}")
        if max_start_epoch - 1 + expert_epochs > buffer.epochs:
            raise InvalidExpertBufferError(
                f"the expert buffer records {buffer.epochs} epochs, but max_start_epoch={max_start_epoch} and "
                f"expert_epochs={expert_epochs} need {max_start_epoch - 1 + expert_epochs}"
            )
        self.buffer, self.max_start, self.expert_epochs = buffer, max_start_epoch, expert_epochs
        self.device, self.generator = device, generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        set_generator_state(self.generator, require(state, "generator"), "expert sampler generator")

    def sample(self, step: int) -> ExpertSegment:  # type: ignore[override]
        e = int(torch.randint(self.buffer.num_experts, (1,), generator=self.generator))
        t = int(torch.randint(self.max_start, (1,), generator=self.generator))
        traj = self.buffer.trajectories[e]
        return ExpertSegment(traj[t].to(self.device), traj[t + self.expert_epochs].to(self.device), e, t)


@register("mtt", "trajectory matching", "match a few student steps on the synthetic set to a longer expert trajectory on real data")
class TrajectoryMatching(Distiller):
    """Matching Training Trajectories (Cazenavette et al., CVPR 2022).

    Each step starts a student at epoch ``t`` of an expert trajectory, trains
    it for ``syn_steps`` SGD steps on the synthetic set with a learnable step
    size ``syn_lr``, and minimises
    ``||w_student - w_expert[t + expert_epochs]||^2 / ||w_expert[t] - w_expert[t + expert_epochs]||^2``
    over the images, ``syn_lr`` and, with ``soft_labels=True``, learnable
    label logits (initialised from the last checkpoint of an expert, as TESLA).

    Meta-gradient (``meta_gradient``):

    * ``"exact"`` (default): reverse-mode through the unrolled student with
      recomputation. The forward pass keeps only the student's parameter
      vectors (one vector per step, no autograd graph); the backward pass
      walks the steps in reverse, rebuilding one step's graph at a time and
      propagating the adjoint with a Hessian-vector product. The result is
      the same gradient as backpropagating through the whole unroll, but the
      autograd graph held at any moment is one step's, so its memory does not
      grow with ``syn_steps`` (the parameter vectors, ~1 MB each for a
      width-128 ConvNet, are the only per-step cost).
    * ``"tesla"``: TESLA's constant-memory gradient, which keeps the adjoint
      fixed at its final value (drops the Hessian terms); cheaper, approximate.
    * ``"unrolled"``: the original MTT (graph over all steps; memory grows
      linearly), kept for comparison and testing.

    Expert buffer: ``expert_path`` names an ``.npz`` buffer
    (:class:`condense.experts.ExpertBuffer`); when it does not exist it is
    built there. With ``expert_path=None`` the buffer is built automatically
    (progress bar "experts") and cached under ``expert_cache`` (default
    ``~/.cache/condense/experts``), keyed by the data's fingerprint and the
    recipe (experts use their own ``expert_seed``, not the run's ``seed``), so it
    is built once per dataset and architecture. A buffer that
    does not fit the data or network raises :class:`InvalidExpertBufferError`.

    Defaults follow the paper (syn_steps 20, expert_epochs 2, lr_teacher
    0.01, lr_lr 1e-5, image SGD momentum 0.5, whole synthetic set per student
    step, DSA), scaled for the CPU: experts of ``expert_train_epochs=6``
    epochs instead of 50 (and ``max_start_epoch=4`` instead of 20), 5 experts
    instead of 100, 1,000 steps instead of 5,000, and ``lr_img=10`` for
    images in the standard normalised space (the paper's 1,000 to 100,000
    are for ZCA-whitened data; on MNIST from a herding start, 200 steps,
    2 seeds, lr_img 10 gave 88.1 % at IPC 1 and 95.6 % at IPC 10 where 100
    gave 85.3 and 93.7: the larger step pulls the images off what trains a
    network from scratch). This objective reads no real batch, so the
    shared loop draws none (``uses_real_batch = False``); each student step
    draws its own per-image DSA parameters, as the paper's code does.
    """

    uses_real_batch = False

    def __init__(
        self,
        ipc: int = 10,
        steps: int = 1000,
        lr_img: float = 10.0,
        momentum: float = 0.5,
        batch_real: int = 1,
        init: str = "real",
        dsa: bool = True,
        dsa_strategy: str | None = None,
        model: str = "convnet",
        model_kwargs: dict[str, Any] | None = None,
        amp: str | None = "auto",
        syn_steps: int = 20,
        expert_epochs: int = 2,
        max_start_epoch: int = 4,
        lr_teacher: float = 0.01,
        lr_lr: float = 1e-5,
        batch_syn: int | None = None,
        soft_labels: bool = False,
        soft_label_init: str = "expert",
        lr_label: float = 2.0,
        meta_gradient: str = "exact",
        expert_path: str | None = None,
        expert_cache: str | None = None,
        num_experts: int = 5,
        expert_train_epochs: int = 6,
        expert_max_samples: int | None = None,
        expert_batch_size: int = 256,
        expert_seed: int = 0,
        seed: int = 0,
        device: str = "cpu",
        show_progress: bool = True,
        callback: Any = None,
    ) -> None:
        super().__init__(
            ipc=ipc, steps=steps, lr_img=lr_img, momentum=momentum, batch_real=batch_real, init=init, dsa=dsa,
            dsa_strategy=dsa_strategy, model=model, model_kwargs=model_kwargs, amp=amp, seed=seed, device=device,
            show_progress=show_progress, callback=callback,
        )
        self.syn_steps = syn_steps
        self.expert_epochs = expert_epochs
        self.max_start_epoch = max_start_epoch
        self.lr_teacher = lr_teacher
        self.lr_lr = lr_lr
        self.batch_syn = batch_syn
        self.soft_labels = soft_labels
        self.soft_label_init = soft_label_init
        self.lr_label = lr_label
        self.meta_gradient = meta_gradient
        self.expert_path = expert_path
        self.expert_cache = expert_cache
        self.num_experts = num_experts
        self.expert_train_epochs = expert_train_epochs
        self.expert_max_samples = expert_max_samples
        self.expert_batch_size = expert_batch_size
        self.expert_seed = expert_seed

    # ------------------------------------------------------------ experts
    def expert_recipe(self) -> dict[str, Any]:
        return {
            "model": self.model, "model_kwargs": self.model_kwargs or {}, "num_experts": self.num_experts,
            "epochs": self.expert_train_epochs, "lr": self.lr_teacher, "max_samples": self.expert_max_samples,
            "batch_size": self.expert_batch_size, "dsa": self.dsa, "seed": self.expert_seed,
        }

    def load_or_build_experts(self, real: RealData) -> tuple[ExpertBuffer, Path]:
        """The documented automatic step: load the buffer, or train and save it once."""
        recipe = self.expert_recipe()
        if self.expert_path is not None:
            path = Path(self.expert_path)
        else:
            cache = Path(self.expert_cache) if self.expert_cache else default_cache_dir()
            path = cache / f"{real.source.name.replace('/', '_')}_{cache_key(real, normalization=real.normalization.to_meta(), **recipe)}.npz"
        if path.exists():
            return ExpertBuffer.load(path), path
        buffer = train_experts(
            real, num_experts=self.num_experts, epochs=self.expert_train_epochs, model=self.model,
            model_kwargs=self.model_kwargs, lr=self.lr_teacher, dsa=self.dsa, max_samples=self.expert_max_samples,
            batch_size=self.expert_batch_size, seed=self.expert_seed, device=self.device, show_progress=self.show_progress,
        )
        buffer.save(path)
        return buffer, path

    # ------------------------------------------------------------ loop hooks
    def initial_images(self, real: RealData) -> torch.Tensor:
        self._images = super().initial_images(real)
        return self._images

    def make_sampler(self, real: RealData) -> NetworkSampler:
        if self.meta_gradient not in META_GRADIENTS:
            raise CondenseError(f"meta_gradient must be one of {META_GRADIENTS}, got '{self.meta_gradient}'")
        if self.syn_steps < 1:
            raise CondenseError(f"syn_steps must be >= 1, got {self.syn_steps}")
        if self.soft_label_init not in ("expert", "onehot"):
            raise CondenseError(f"soft_label_init must be 'expert' or 'onehot', got '{self.soft_label_init}'")
        buffer, path = self.load_or_build_experts(real)
        self._student: nn.Module = self.build_network(real).to(self.device)
        buffer.check_compatible(self._student, real)
        self._buffer, self._buffer_path = buffer, path
        self._shapes = buffer.shapes
        self._augment = SiameseAugment(self.dsa_strategy or default_strategy(real.x.shape[1])) if self.dsa else None
        self._gen = self._generator(4)
        self._syn_lr = torch.tensor(float(self.lr_teacher), device=self.device, requires_grad=True)
        self._soft = None
        labels = torch.tensor(real.classes, device=self.device).repeat_interleave(self.ipc)
        if self.soft_labels:
            if self.soft_label_init == "expert":
                final = unflatten_parameters(buffer.trajectories[0][-1].to(self.device), self._shapes)
                with torch.no_grad():
                    logits = functional_call(self._student, final, (self._images.detach(),))
            else:
                logits = F.one_hot(labels, real.num_classes).float() * 5.0
            self._soft = logits.detach().clone().requires_grad_(True)
        return ExpertSampler(buffer, self.max_start_epoch, self.expert_epochs, self.device, self._generator(5))

    def extra_parameters(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": [self._syn_lr], "lr": self.lr_lr, "momentum": 0.5}]
        if self._soft is not None:
            groups.append({"params": [self._soft], "lr": self.lr_label, "momentum": 0.9})
        return groups

    def extra_state(self) -> dict[str, torch.Tensor]:
        """The generator of the student's minibatches and augmentations (the learned tensors are the optimizer's)."""
        return {"student_generator": self._gen.get_state()}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        set_generator_state(self._gen, require(state, "student_generator"), "student generator")

    def after_step(self, batch: StepBatch, sampler: NetworkSampler) -> None:
        with torch.no_grad():
            self._syn_lr.clamp_(min=1e-6)  # a negative step size would train the student backwards

    def finish(self, images: torch.Tensor, labels: torch.Tensor) -> Condensed:
        soft = None if self._soft is None else self._soft.detach().cpu()
        meta = {
            "syn_lr": float(self._syn_lr.detach()),
            "meta_gradient": self.meta_gradient,
            "experts": {"path": str(self._buffer_path), "num_experts": self._buffer.num_experts, "epochs": self._buffer.epochs},
        }
        self._images = None
        return Condensed(images.detach().cpu(), labels.cpu(), soft, meta)

    # ------------------------------------------------------------ the student
    def _student_plan(self, n: int) -> list[tuple[torch.Tensor, AugmentParams | None]]:
        """Minibatch indices and augmentation draws of every student step, fixed up front
        so the reverse pass replays exactly the forward pass."""
        batch = self.batch_syn or n
        plan, order = [], torch.empty(0, dtype=torch.long)
        for _ in range(self.syn_steps):
            if order.numel() < batch:
                order = torch.cat([order, torch.randperm(n, generator=self._gen)])
            idx, order = order[:batch], order[batch:]
            aug = self._augment.sample(idx.numel(), tuple(self._images.shape[-2:]), self._gen) if self._augment else None
            plan.append((idx.to(self.device), aug))
        return plan

    def _student_loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None,
                      idx: torch.Tensor, aug: AugmentParams | None) -> torch.Tensor:
        xb = x[idx]
        if aug is not None:
            xb = self._augment.apply(xb, aug)  # type: ignore[union-attr]
        out = functional_call(self._student, unflatten_parameters(w, self._shapes), (xb,))
        if soft is None:
            return F.cross_entropy(out, y[idx])
        return -(F.softmax(soft[idx], 1) * F.log_softmax(out, 1)).sum(1).mean()

    def objective(self, batch: StepBatch) -> torch.Tensor:
        seg: ExpertSegment = batch.net
        x, y, soft, lr = self._images, batch.syn_y, self._soft, self._syn_lr
        plan = self._student_plan(x.shape[0])
        start, target = seg.start, seg.target
        denom = (start - target).pow(2).sum().clamp_min(1e-12)
        if self.meta_gradient == "unrolled":
            w = start.clone().requires_grad_(True)
            for idx, aug in plan:
                g = torch.autograd.grad(self._student_loss(w, x, y, soft, idx, aug), w, create_graph=True)[0]
                w = w - lr * g
            return (w - target).pow(2).sum() / denom
        return self._adjoint_objective(plan, start, target, denom, x, y, soft, lr)

    def _adjoint_objective(self, plan: list, start: torch.Tensor, target: torch.Tensor, denom: torch.Tensor,
                           x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None, lr: torch.Tensor) -> torch.Tensor:
        """Meta-gradient by a reverse sweep with recomputation; returns a surrogate whose
        value is the loss and whose gradient (to images, syn_lr, soft labels) is the meta-gradient."""
        alpha = float(lr.detach())
        x_d = x.detach()
        soft_d = None if soft is None else soft.detach()
        points = [start.detach()]
        for idx, aug in plan:  # forward: parameter vectors only, no graph kept
            w = points[-1].clone().requires_grad_(True)
            g = torch.autograd.grad(self._student_loss(w, x_d, y, soft_d, idx, aug), w)[0]
            points.append((w - alpha * g).detach())
        final = points[-1]
        loss_value = (final - target).pow(2).sum() / denom
        adj = 2 * (final - target) / denom  # dL/dw_N
        grad_x = torch.zeros_like(x_d)
        grad_soft = None if soft_d is None else torch.zeros_like(soft_d)
        grad_lr = torch.zeros(())
        exact = self.meta_gradient == "exact"
        for i in reversed(range(len(plan))):  # backward: one step's graph at a time
            idx, aug = plan[i]
            w = points[i].clone().requires_grad_(True)
            xi = x_d.clone().requires_grad_(True)
            si = None if soft_d is None else soft_d.clone().requires_grad_(True)
            g = torch.autograd.grad(self._student_loss(w, xi, y, si, idx, aug), w, create_graph=True)[0]
            inputs = [xi] + ([w] if exact else []) + ([si] if si is not None else [])
            vjp = torch.autograd.grad((g * adj).sum(), inputs, allow_unused=True)
            grad_lr = grad_lr - (adj * g.detach()).sum()  # w_{i+1} = w_i - lr g_i
            grad_x = grad_x - alpha * _zero_if_none(vjp[0], xi)
            if si is not None:
                grad_soft = grad_soft - alpha * _zero_if_none(vjp[-1], si)  # type: ignore[operator]
            if exact:
                adj = adj - alpha * _zero_if_none(vjp[1], w)  # (I - lr H_i) adj
        surrogate = (x * grad_x).sum() + lr * grad_lr.to(lr.device)
        if soft is not None:
            surrogate = surrogate + (soft * grad_soft).sum()
        return surrogate - surrogate.detach() + loss_value


def _zero_if_none(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if t is None else t
