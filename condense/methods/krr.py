"""Kernel ridge regression performance matching (KIP / FRePo-style).

Nguyen, Chen & Lee, "Dataset Meta-Learning from Kernel Ridge-Regression"
(KIP), ICLR 2021; Zhou, Nezhadarya & Ba, "Dataset Distillation using Neural
Feature Regression" (FRePo), NeurIPS 2022; Loo et al., "Efficient Dataset
Distillation using Random Feature Approximation" (RFAD), NeurIPS 2022.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from condense.errors import InsufficientSamplesError
from condense.loop_state import LearnedTensor, LoopState
from condense.methods.base import Condensed, Distiller, StepBatch
from condense.real_data import RealData
from condense.registry import register


@register("krr", "performance matching", "error on real data of kernel ridge regression fitted on the synthetic set")
class KernelRidgeRegression(Distiller):
    """Fit kernel ridge regression on the synthetic set, score it on a real batch,
    and move the synthetic images (and, with ``learn_labels``, their labels) to
    lower that score.

    No real-data statistic: the loss is quadratic in each real embedding, so its real side needs the embeddings' D x D second moment, not the per-class sums the statistic interface carries.

    With features ``phi`` the loss of one step is::

        K_ss = phi(S) phi(S)^T / D,   K_rs = phi(R) phi(S)^T / D
        loss = 1/2 mean_r || K_rs (K_ss + lambda I)^-1 Y_s - Y_r ||^2

    with ``lambda = ridge * trace(K_ss) / |S|`` (FRePo's scale-free ridge) and
    centred targets (one-hot minus ``1/K``, as KIP).

    **The kernel, and why.** ``phi`` is the flattened embedding of a ConvNet
    drawn afresh at every step, the same architecture that is evaluated. The
    expected linear kernel of a randomly initialised network's features is
    its NNGP kernel; RFAD shows that a few random ConvNets' features approximate
    the infinite-width ConvNet kernel KIP uses, at a tiny fraction of its cost
    (KIP's exact convolutional NTK is infeasible on a CPU), and averaging over
    steps averages the kernel over the pool of networks. FRePo uses the
    features of networks trained online instead; random features need no
    inner training and still give a kernel whose regressor is a good ConvNet
    readout, which is what the evaluation trains.

    **Learned labels** (``learn_labels=True``; KIP and FRePo learn them):
    every synthetic image has learnable logits ``L`` (initialised so the true
    class has probability ``label_init_confidence``); the regression targets are
    ``softmax(L) - 1/K`` and the saved set carries ``L`` as ``soft_labels``, which
    :func:`condense.evaluate` trains on (cross-entropy with ``softmax(L)``).

    Defaults and CPU scaling: KIP/FRePo use Adam (lr 0.01 images, 0.01 labels)
    for tens of thousands of steps with big real batches and a ridge of 1e-6;
    here SGD with momentum 0.9 (the loop's optimizer) with lr_img 10 and
    lr_label 10 (tuned on digits: the loss is a mean over real samples, so its
    gradients are small), 128 real images per class, DSA, real initialisation,
    and ridge 1e-2: a random network's features are far less diverse than an
    infinite-width kernel, and with 1e-6 the nearly singular ``K_ss`` made
    the image updates erratic (on digits, 40 steps: 78.8% at 1e-6, 82.8% at
    1e-2 with 128-wide nets; with 32-wide nets 1e-6 fell below random).
    Labels are not learned by default: in short runs the learned labels soften
    and the evaluation trains more slowly on them (digits, 40 steps: 55.1%
    with learned labels, 78.8% without).

    Minimums: at least two classes (with one class the centred targets are
    all zero and the loss is constant); fewer raise
    :class:`condense.errors.InsufficientSamplesError`. ``batch_real`` must be
    an integer >= 1, as for every method that reads real batches
    (:class:`condense.errors.InvalidParameterError`).

    Args:
        ridge: ridge coefficient relative to the mean kernel diagonal.
        learn_labels: learn soft labels alongside the images.
        lr_label: SGD learning rate of the label logits.
        label_init_confidence: starting probability of each image's own class.
        Other arguments: see :class:`condense.methods.base.Distiller`.
    """

    min_classes = 2  # with one class the regression targets are constant

    def __init__(
        self,
        ipc: int = 10,
        steps: int = 1000,
        lr_img: float = 10.0,
        momentum: float = 0.9,
        batch_real: int = 128,
        ridge: float = 1e-2,
        learn_labels: bool = False,
        lr_label: float = 10.0,
        label_init_confidence: float = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(ipc=ipc, steps=steps, lr_img=lr_img, momentum=momentum, batch_real=batch_real, **kwargs)
        self.ridge = ridge
        self.learn_labels = learn_labels
        self.lr_label = lr_label
        self.label_init_confidence = label_init_confidence

    def initial_images(self, real: RealData) -> torch.Tensor:
        if len(real.classes) < 2:
            raise InsufficientSamplesError(
                f"krr needs at least 2 classes in the data (found {len(real.classes)}): "
                "with one class the regression targets are constant"
            )
        if not 0.0 < self.label_init_confidence < 1.0:
            raise ValueError(f"label_init_confidence must lie in (0, 1), got {self.label_init_confidence}")
        return super().initial_images(real)

    def learned_tensors(self, real: RealData, images: torch.Tensor, context: dict[str, Any]) -> dict[str, LearnedTensor]:
        """With ``learn_labels``: per-image label logits over the present classes."""
        if not self.learn_labels:
            return {}
        k = len(real.classes)
        # Logit gap so that softmax over the k present classes gives the wanted confidence.
        p = self.label_init_confidence
        gap = math.log(p * (k - 1) / (1 - p))
        present = torch.full((images.shape[0], k), 0.0, device=images.device)
        present[torch.arange(images.shape[0]), torch.arange(k, device=images.device).repeat_interleave(self.ipc)] = gap
        return {"label_logits": LearnedTensor(present, self.lr_label, self.momentum)}

    def _targets(self, state: LoopState) -> torch.Tensor:
        k = state.num_groups
        if self.learn_labels:
            return F.softmax(state.learned["label_logits"], dim=1) - 1.0 / k
        return F.one_hot(state.groups, k).float() - 1.0 / k

    def objective(self, batch: StepBatch, state: LoopState) -> torch.Tensor:
        net, k = batch.net, batch.num_groups
        phi_r = self.embed_real(net, batch.real_x)
        phi_s = net.embed(batch.syn_x)
        d = phi_s.shape[1]  # the kernel's scale cancels against the ridge; /d only keeps it O(1)
        k_ss = phi_s @ phi_s.t() / d
        k_rs = phi_r @ phi_s.t() / d
        n = k_ss.shape[0]
        lam = self.ridge * k_ss.diagonal().mean().detach().clamp_min(1e-12)
        eye = torch.eye(n, device=k_ss.device, dtype=k_ss.dtype)
        alpha = torch.linalg.solve(k_ss + lam * eye, self._targets(state))
        y_real = F.one_hot(batch.real_groups, k).float() - 1.0 / k
        return 0.5 * (k_rs @ alpha - y_real).pow(2).sum(1).mean()

    def finish(self, state: LoopState) -> Condensed:
        images, labels = state.images.detach().cpu(), state.labels.cpu()
        if not self.learn_labels:
            return Condensed(images, labels, meta={"learned_labels": False})
        # Columns of absent classes get a logit far below the rest (probability ~0).
        present = state.learned["label_logits"].detach().cpu()
        soft = torch.full((present.shape[0], state.context["real"].num_classes), float(present.min()) - 30.0)
        soft[:, state.classes] = present
        return Condensed(images, labels, soft, meta={"learned_labels": True})
