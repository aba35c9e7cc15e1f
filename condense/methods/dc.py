"""Gradient matching (DC), single-step parameter matching.

Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021.
The DSA variant (same objective, differentiable siamese augmentation on both
batches) is :mod:`condense.methods.dsa`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from condense.augment import SiameseAugment, default_strategy
from condense.checkpoint import (
    load_module_state, load_optimizer_state, optimizer_state, prefixed, require, set_generator_state, take,
)
from condense.loop_state import LoopState
from condense.methods.base import Condensed, Distiller, StepBatch
from condense.real_data import RealData
from condense.registry import register
from condense.samplers import NetworkSampler
from condense.seeding import reinitialize, step_generator
from condense.statistic import ClassStatistic

# (outer_loop, inner_loop) by images per class, as in the official code.
LOOPS_BY_IPC = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: int) -> tuple[int, int]:
    """The official (outer_loop, inner_loop) for ``ipc``; the nearest listed IPC otherwise."""
    if ipc in LOOPS_BY_IPC:
        return LOOPS_BY_IPC[ipc]
    nearest = min(LOOPS_BY_IPC, key=lambda k: (abs(k - ipc), k))
    return LOOPS_BY_IPC[nearest]


def gradient_distance(grads_syn: list[torch.Tensor], grads_real: list[torch.Tensor], metric: str = "ours") -> torch.Tensor:
    """Distance between two lists of per-parameter gradients.

    ``"ours"`` is the paper's layer-wise distance: every weight tensor is viewed
    as ``(out, -1)``; the distance sums ``1 - cos`` over output units; biases
    and normalisation parameters (1-D tensors) are left out, as in the
    original. ``"mse"`` and ``"cos"`` are the paper's alternatives on the
    flattened gradients.
    """
    if metric == "ours":
        total = grads_syn[0].new_zeros(())
        for gs, gr in zip(grads_syn, grads_real):
            if gs.dim() == 1:
                continue
            gs, gr = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
            cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
            total = total + (1 - cos).sum()
        return total
    flat_s = torch.cat([g.reshape(-1) for g in grads_syn])
    flat_r = torch.cat([g.reshape(-1) for g in grads_real])
    if metric == "mse":
        return (flat_s - flat_r).pow(2).sum()
    if metric == "cos":
        return 1 - (flat_s * flat_r).sum() / (flat_s.norm() * flat_r.norm() + 1e-6)
    raise ValueError(f"unknown gradient distance '{metric}': use 'ours', 'mse' or 'cos'")


class TrainedAlongSampler(NetworkSampler):
    """A network that is re-initialised every ``outer_loop`` steps (weights of
    step ``t`` from ``step_generator(seed, t, "net")``) and, in between, trained
    for ``inner_loop`` passes over the current synthetic set (so later outer
    steps match gradients at partly trained weights).
    """

    def __init__(
        self,
        build: Callable[[], nn.Module],
        device: str,
        outer_loop: int,
        inner_loop: int,
        lr_net: float,
        batch_train: int,
        augment: SiameseAugment | None,
        generator: torch.Generator,
        seed: int = 0,
    ) -> None:
        if outer_loop < 1 or inner_loop < 0:
            raise ValueError(f"outer_loop must be >= 1 and inner_loop >= 0, got {outer_loop}, {inner_loop}")
        self.net = build().to(device)
        self.outer_loop, self.inner_loop = outer_loop, inner_loop
        self.lr_net, self.batch_train = lr_net, batch_train
        self.augment, self.generator, self.seed = augment, generator, seed
        self.optimizer: torch.optim.Optimizer | None = None

    def sample(self, step: int) -> nn.Module:
        if step % self.outer_loop == 0:  # weights from (seed, step) alone: the same on every worker
            reinitialize(self.net, step_generator(self.seed, step, "net"))
            self.optimizer = self._new_optimizer()
        return self.net.train()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        # Plain SGD on the network, as the reference implementation.
        return torch.optim.SGD(self.net.parameters(), lr=self.lr_net)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network trained along, its optimizer and the generator of the inner loop."""
        state = {"generator": self.generator.get_state(), **prefixed(self.net.state_dict(), "net.")}
        if self.optimizer is not None:
            state["has_optimizer"] = torch.ones(())
            state.update(prefixed(optimizer_state(self.optimizer), "optimizer."))
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        set_generator_state(self.generator, require(state, "generator"), "sampler generator")
        load_module_state(self.net, take(state, "net."), "the trained-along network")
        self.optimizer = None
        if "has_optimizer" in state:
            self.optimizer = self._new_optimizer()
            load_optimizer_state(self.optimizer, take(state, "optimizer."))

    def train_along(self, step: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        """The inner loop; skipped after the last outer step of a network (it is discarded)."""
        if (step + 1) % self.outer_loop == 0 or self.optimizer is None:
            return
        x, y = images.detach(), labels.detach()
        n = x.shape[0]
        for _ in range(self.inner_loop):
            order = torch.randperm(n, generator=self.generator).to(x.device)
            for start in range(0, n, self.batch_train):
                idx = order[start : start + self.batch_train]
                xb = x[idx]
                if self.augment is not None:
                    xb = self.augment(xb, self.generator)
                loss = F.cross_entropy(self.net(xb), y[idx])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        # The outer loss's backward also reaches the weights; none of it must leak into the next step.
        self.optimizer.zero_grad(set_to_none=True)


@register("dc", "gradient matching", "match per-class network gradients on real and synthetic batches (no augmentation)")
class GradientMatching(Distiller):
    """Dataset Condensation with gradient matching (Zhao et al., ICLR 2021).

    Per class, the layer-wise cosine distance between the gradient of the
    classification loss on a real batch and on the synthetic images of that
    class, summed over classes. The network is "trained along": a fresh one
    every ``outer_loop`` steps, trained on the synthetic set for
    ``inner_loop`` epochs after each step.

    Defaults follow the official code: lr_img 0.1 (momentum 0.5), 256 real
    images per class, lr_net 0.01, batch_train 256, outer/inner loops by IPC
    (1 -> 1/1, 10 -> 10/50, 50 -> 50/10). Scaled for the CPU: ``steps``
    counts image updates (the paper runs 1,000 iterations of ``outer_loop``
    updates each, i.e. 10,000 at IPC 10; here 1,000 by default), and the set
    starts from real images (the official default is noise), which converges
    in far fewer steps.

    Real-data statistic: per class, the summed gradient of the real samples'
    cross-entropy (one backward per class); per-sample rows (for clipping)
    come from ``torch.func``.

    Args:
        outer_loop, inner_loop: ``None`` picks the official values for ``ipc``.
        lr_net: SGD learning rate of the inner loop.
        batch_train: minibatch of the inner loop.
        distance: ``"ours"`` (layer-wise cosine), ``"mse"`` or ``"cos"``.
        amp: ``"auto"`` (default) computes the real batch's gradient, the fixed
            target, under bfloat16 autocast where the device supports it
            natively; ``None`` keeps it in float32.
        (others: see :class:`condense.methods.base.Distiller`)
    """

    def __init__(
        self,
        ipc: int = 10,
        steps: int = 1000,
        lr_img: float = 0.1,
        momentum: float = 0.5,
        batch_real: int = 256,
        dsa: bool = False,
        outer_loop: int | None = None,
        inner_loop: int | None = None,
        lr_net: float = 0.01,
        batch_train: int = 256,
        distance: str = "ours",
        **kwargs: Any,
    ) -> None:
        super().__init__(ipc=ipc, steps=steps, lr_img=lr_img, momentum=momentum, batch_real=batch_real, dsa=dsa, **kwargs)
        self.outer_loop = outer_loop
        self.inner_loop = inner_loop
        self.lr_net = lr_net
        self.batch_train = batch_train
        self.distance = distance

    def loops(self) -> tuple[int, int]:
        """(outer_loop, inner_loop) actually used."""
        outer, inner = default_loops(self.ipc)
        return (self.outer_loop or outer, inner if self.inner_loop is None else self.inner_loop)

    def make_sampler(self, real: RealData, context: dict[str, Any] | None = None) -> NetworkSampler:
        gradient_distance([torch.ones(1, 1)], [torch.ones(1, 1)], self.distance)  # bad names fail before any work
        outer, inner = self.loops()
        return TrainedAlongSampler(
            lambda: self.build_network(real), self.device, outer, inner, self.lr_net, self.batch_train,
            self.augmenter(real), self._generator(3), seed=self.seed,
        )

    supports_statistic = True

    def sample_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Each real sample's gradient of its cross-entropy, flattened over the weights ``(B, D)`` (torch.func)."""
        params = {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}
        buffers = dict(net.named_buffers())

        def loss_of(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            out = functional_call(net, (p, buffers), (xi.unsqueeze(0),))
            return F.cross_entropy(out, yi.unsqueeze(0))

        grads = vmap(grad(loss_of), in_dims=(None, 0, 0))(params, x, y)
        return torch.cat([g.reshape(x.shape[0], -1) for g in grads.values()], dim=1).detach()

    def real_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor,
                       num_groups: int) -> ClassStatistic:
        """Per class, the summed gradient of the real samples' cross-entropy: one backward per class."""
        params = [p for p in net.parameters() if p.requires_grad]
        sums, counts = [], []
        for g in range(num_groups):
            mask = groups == g
            n = int(mask.sum())
            if n == 0:
                sums.append(torch.cat([p.new_zeros(p.numel()) for p in params]))
                counts.append(0.0)
                continue
            xr, yr = x[mask], y[mask]
            if self._real_embedder().bf16:  # decided once per run, as for the no-grad real forwards
                # The real gradient is a fixed target: computing it in bfloat16 is much cheaper on capable CPUs/GPUs.
                with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16):
                    out_real = net(xr)
                real_loss = F.cross_entropy(out_real.float(), yr, reduction="sum")
            else:
                real_loss = F.cross_entropy(net(xr), yr, reduction="sum")
            sums.append(torch.cat([t.detach().reshape(-1) for t in torch.autograd.grad(real_loss, params)]))
            counts.append(float(n))
        return ClassStatistic(torch.stack(sums), torch.tensor(counts, device=sums[0].device))

    def match(self, net: nn.Module, stat: ClassStatistic, batch: StepBatch, state: LoopState) -> torch.Tensor:
        params = [p for p in net.parameters() if p.requires_grad]
        means = stat.means()
        loss = batch.syn_x.new_zeros(())
        for g in range(batch.num_groups):
            syn_mask = batch.syn_groups == g
            xs, ys = batch.syn_x[syn_mask], batch.syn_y[syn_mask]
            g_real = list(torch.split(means[g], [p.numel() for p in params]))
            g_real = [t.view_as(p) for t, p in zip(g_real, params)]
            g_syn = torch.autograd.grad(F.cross_entropy(net(xs), ys), params, create_graph=True)
            loss = loss + gradient_distance(list(g_syn), g_real, self.distance)
        return loss

    def after_step(self, state: LoopState, batch: StepBatch) -> None:
        assert isinstance(state.sampler, TrainedAlongSampler)
        state.sampler.train_along(batch.step, state.images, state.labels)

    def finish(self, state: LoopState) -> Condensed:
        out = super().finish(state)
        outer, inner = self.loops()
        out.meta.update(outer_loop=outer, inner_loop=inner)
        return out
