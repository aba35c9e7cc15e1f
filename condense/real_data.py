"""Real training data prepared for condensation: normalized, on the device, indexed by class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from condense.data.tensor_data import TensorData
from condense.errors import InsufficientSamplesError, require_int
from condense.normalization import Normalization


@dataclass
class RealData:
    """Normalized real images on ``device`` with a per-class index.

    ``classes`` lists the classes present, in increasing order; group ``g`` of
    a class-balanced batch is class ``classes[g]``.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    classes: list[int]
    index_by_class: dict[int, torch.Tensor]
    normalization: Normalization
    source: TensorData

    @classmethod
    def prepare(
        cls,
        data: TensorData,
        device: str | torch.device = "cpu",
        normalization: Normalization | None = None,
        ipc: int | None = None,
    ) -> "RealData":
        """Normalize (with the data's own statistics unless given) and index by class.

        With ``ipc``, every present class must hold at least ``ipc`` samples;
        otherwise :class:`InsufficientSamplesError` names the classes short of it.
        """
        norm = normalization or Normalization.from_data(data.x)
        counts = data.class_counts()
        classes = [c for c, n in enumerate(counts) if n > 0]
        if ipc is not None:
            ipc = require_int("ipc", ipc, 1)
            short = {c: counts[c] for c in classes if counts[c] < ipc}
            if short:
                detail = ", ".join(f"class {c} has {n}" for c, n in short.items())
                raise InsufficientSamplesError(f"{data.name}: ipc={ipc} needs {ipc} samples per class, but {detail}")
        x = norm.apply(data.x).to(device)
        y = data.y.to(device)
        index = {c: torch.nonzero(data.y == c).flatten() for c in classes}
        return cls(x, y, data.num_classes, classes, index, norm, data)

    def class_images(self, c: int) -> torch.Tensor:
        return self.x[self.index_by_class[c].to(self.x.device)]

    def balanced_batch(
        self, per_class: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Up to ``per_class`` random images of every class, grouped by class.

        Returns ``(x, y, groups)`` where ``groups[i]`` is the position of
        ``y[i]`` in :attr:`classes`.
        """
        per_class = require_int("per_class", per_class, 1)  # a negative count would slice from the end
        picks, groups = [], []
        for g, c in enumerate(self.classes):
            idx = self.index_by_class[c]
            take = torch.randperm(idx.numel(), generator=generator)[:per_class]
            picks.append(idx[take])
            groups.append(torch.full((take.numel(),), g, dtype=torch.long))
        index = torch.cat(picks).to(self.x.device)
        return self.x[index], self.y[index], torch.cat(groups).to(self.x.device)


def group_means(values: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean of the rows of ``values`` in each group: ``(num_groups, D)``."""
    sums = torch.zeros(num_groups, values.shape[1], device=values.device, dtype=values.dtype)
    sums = sums.index_add(0, groups, values)
    counts = torch.bincount(groups, minlength=num_groups).clamp_min(1).to(values.dtype)
    return sums / counts.unsqueeze(1)
