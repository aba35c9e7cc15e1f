"""The state of one distillation run, as one object.

:meth:`condense.methods.base.Distiller.init_state` creates it and
:meth:`~condense.methods.base.Distiller.step` advances it by one step; ``fit``
is "create, then ``steps`` steps, then finish". A checkpoint is
:meth:`LoopState.state_dict` (plus the run's identity, see
:mod:`condense.checkpoint`). Methods declare what they learn besides the
images (:class:`LearnedTensor`: soft labels, step sizes) instead of setting
attributes on themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from condense.checkpoint import (
    InvalidCheckpointError, StateDict, load_optimizer_state, optimizer_state, prefixed, require, set_generator_state,
    take,
)
from condense.errors import InvalidParameterError

if TYPE_CHECKING:
    from condense.augment import SiameseAugment
    from condense.samplers import NetworkSampler

OPTIMIZERS = ("sgd", "adam")


@dataclass
class LearnedTensor:
    """A tensor a method learns along with the images, and how it is optimised.

    Attributes:
        value: the tensor (the loop makes it require grad when ``trainable``).
        lr: its learning rate.
        momentum: SGD momentum (``None``: the method's ``momentum``); Adam ignores it.
        trainable: ``False`` keeps a fixed tensor in the state (saved, restored) without optimising it.
    """

    value: torch.Tensor
    lr: float = 0.0
    momentum: float | None = None
    trainable: bool = True


def make_optimizer(name: str, groups: list[dict[str, Any]], lr: float, momentum: float) -> torch.optim.Optimizer:
    """``"sgd"`` (with per-group momentum) or ``"adam"`` over ``groups``."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam([{k: v for k, v in g.items() if k != "momentum"} for g in groups], lr=lr)
    raise InvalidParameterError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


@dataclass
class LoopState:
    """Everything the next step of a run depends on.

    Attributes:
        images: the stored synthetic tensor (requires grad); IDM: its packed formation.
        labels: ``(N,)`` int64 hard labels of the stored images.
        groups: ``(N,)`` position of each label in ``classes``.
        classes: the classes present, in increasing order.
        learned: the method's other learned (or fixed) tensors by name, e.g. ``"soft_labels"``, ``"log_lr"``.
        optimizer: over the images and the trainable learned tensors.
        sampler: where each step's network comes from.
        generator: the loop's own generator (draws that are not per-step, e.g. DP noise).
        step: steps completed.
        losses: the objective's value at every completed step (see :meth:`read_losses`).
        generators: further named generators a method draws from across steps (saved and restored).
        augment: the run's DSA transform, or ``None``.
        context: run-scoped objects that are not state (a student network, an expert buffer).
    """

    images: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    classes: list[int]
    learned: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    sampler: "NetworkSampler"
    generator: torch.Generator
    step: int = 0
    losses: list[float] = field(default_factory=list)
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    augment: "SiameseAugment | None" = None
    context: dict[str, Any] = field(default_factory=dict)
    pending: list[torch.Tensor] = field(default_factory=list)

    @property
    def num_groups(self) -> int:
        return len(self.classes)

    def record_loss(self, loss: torch.Tensor) -> None:
        """Keep the step's loss on its device; :meth:`read_losses` reads them (no sync every step)."""
        self.pending.append(loss.detach())

    def read_losses(self) -> list[float]:
        """Move the losses kept on the device into :attr:`losses` (one device read) and return them."""
        if self.pending:
            self.losses.extend(torch.stack(self.pending).float().cpu().tolist())
            self.pending = []
        return self.losses

    def trainable(self) -> list[torch.Tensor]:
        """The optimizer's tensors, in its order."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> StateDict:
        """Every tensor the next step depends on (the step and losses travel beside it in a checkpoint)."""
        state: StateDict = {"rng.loop": self.generator.get_state(), "learned.images": self.images.detach().cpu().clone()}
        state.update({f"learned.{k}": v.detach().cpu().clone() for k, v in self.learned.items()})
        state.update(prefixed(optimizer_state(self.optimizer), "optim."))
        state.update(prefixed(self.sampler.state_dict(), "sampler."))
        state.update({f"generator.{k}": g.get_state() for k, g in self.generators.items()})
        return state

    def load_state_dict(self, arrays: StateDict) -> None:
        """Put :meth:`state_dict`'s tensors back (in place: the optimizer holds these tensors)."""
        stored = set(take(arrays, "learned."))
        expected = {"images", *self.learned}
        if stored != expected:
            raise InvalidCheckpointError(f"the checkpoint holds learned tensors {sorted(stored)}, this run {sorted(expected)}")
        self.sampler.load_state_dict(take(arrays, "sampler."))
        with torch.no_grad():
            for name, target in [("images", self.images), *self.learned.items()]:
                value = require(arrays, f"learned.{name}")
                if value.shape != target.shape:
                    raise InvalidCheckpointError(
                        f"learned tensor '{name}' has shape {tuple(value.shape)}, this run {tuple(target.shape)}"
                    )
                target.copy_(value)
        load_optimizer_state(self.optimizer, take(arrays, "optim."))
        set_generator_state(self.generator, require(arrays, "rng.loop"), "rng.loop")
        saved_generators = take(arrays, "generator.")
        if set(saved_generators) != set(self.generators):
            raise InvalidCheckpointError(f"the checkpoint holds generators {sorted(saved_generators)}, this run {sorted(self.generators)}")
        for name, gen in self.generators.items():
            set_generator_state(gen, saved_generators[name], f"generator {name}")
