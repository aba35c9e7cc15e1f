"""The real-data statistic of a step, and where it comes from.

Methods whose real side is a sum over samples (distribution matching: dm,
idm, cafe; gradient matching: dc, dsa) split their objective in two: the real
side, per-class sums and counts of each real sample's contribution under the
step's network (no autograd), and :meth:`match`, the synthetic side and the
distance. The loop composes them through a :class:`StatisticSource`, so a
wrapper can clip and noise per-sample rows (differential privacy), accumulate
sums over batches as they arrive (streams), or add the sums of many workers
(shards) without touching a method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

from condense.errors import CondenseError, InvalidParameterError

if TYPE_CHECKING:
    from condense.augment import AugmentParams
    from condense.loop_state import LoopState
    from condense.methods.base import Distiller
    from condense.real_data import RealData


class StatisticUnsupportedError(CondenseError):
    """A method whose real side is not a sum over samples was asked for a real-data statistic."""


@dataclass
class ClassStatistic:
    """Per-class sums of per-sample contributions, and the counts they sum over.

    Attributes:
        sums: ``(K, D)`` float32, the sum over each class's real samples.
        counts: ``(K,)`` float32 (a float, so differential privacy can noise it).
    """

    sums: torch.Tensor
    counts: torch.Tensor

    def __post_init__(self) -> None:
        if self.sums.dim() != 2 or self.counts.dim() != 1 or self.counts.shape[0] != self.sums.shape[0]:
            raise InvalidParameterError(
                f"a class statistic needs sums (K, D) and counts (K,), got {tuple(self.sums.shape)} and {tuple(self.counts.shape)}"
            )

    @property
    def num_groups(self) -> int:
        return int(self.sums.shape[0])

    def __add__(self, other: "ClassStatistic") -> "ClassStatistic":
        """Statistics of disjoint batches (streams, shards) add up."""
        if self.sums.shape != other.sums.shape:
            raise InvalidParameterError(f"cannot add class statistics of shapes {tuple(self.sums.shape)} and {tuple(other.sums.shape)}")
        return ClassStatistic(self.sums + other.sums.to(self.sums.device), self.counts + other.counts.to(self.counts.device))

    def means(self) -> torch.Tensor:
        """``sums / counts`` per class (a class without samples gives zeros): ``(K, D)``."""
        return self.sums / self.counts.clamp_min(1).unsqueeze(1)

    def to(self, device: str | torch.device) -> "ClassStatistic":
        return ClassStatistic(self.sums.to(device), self.counts.to(device))

    @classmethod
    def zeros(cls, num_groups: int, dim: int, device: str | torch.device = "cpu") -> "ClassStatistic":
        """The statistic of no samples (the start of a running sum)."""
        return cls(torch.zeros(num_groups, dim, device=device), torch.zeros(num_groups, device=device))

    @classmethod
    def from_samples(cls, per_sample: torch.Tensor, groups: torch.Tensor, num_groups: int) -> "ClassStatistic":
        """Sum the rows of ``per_sample`` ``(B, D)`` by their group ``groups`` ``(B,)``."""
        rows = per_sample.reshape(per_sample.shape[0], -1).float()
        sums = torch.zeros(num_groups, rows.shape[1], device=rows.device, dtype=rows.dtype).index_add(0, groups, rows)
        counts = torch.bincount(groups, minlength=num_groups).to(rows.dtype)
        return cls(sums, counts)


@runtime_checkable
class StatisticSource(Protocol):
    """Where the loop's real-data statistic of a step comes from."""

    def statistic(self, method: "Distiller", net: nn.Module, state: "LoopState",
                  augment: "AugmentParams | None") -> ClassStatistic:
        """The statistic of step ``state.step`` under ``net``, with the step's augmentation applied."""
        ...


class BatchStatistic:
    """The default source: a class-balanced batch of ``method.batch_real`` real
    images per class, drawn from the step's ``"batch"`` generator, augmented with
    the step's parameters (the synthetic batch gets the same: DSA is siamese),
    and reduced by ``method.real_statistic``.
    """

    def __init__(self, real: "RealData") -> None:
        self.real = real

    def batch(self, method: "Distiller", state: "LoopState") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The step's real batch ``(x, y, groups)`` before augmentation."""
        return self.real.balanced_batch(method.batch_real, method.step_generator(state, "batch"))

    def statistic(self, method: "Distiller", net: nn.Module, state: "LoopState",
                  augment: "AugmentParams | None") -> ClassStatistic:
        x, y, groups = self.batch(method, state)
        if augment is not None and state.augment is not None:
            x = state.augment.apply(x, augment, groups)
        return method.real_statistic(net, x, y, groups, len(self.real.classes))
