"""Per-channel normalization computed from training data and recorded in ``meta``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_data(cls, x: torch.Tensor) -> "Normalization":
        """Per-channel mean and std of ``(N, C, H, W)`` images (std floored at 1e-6)."""
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
        return cls(tuple(flat.mean(1).tolist()), tuple(flat.std(1).clamp_min(1e-6).tolist()))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Normalization | None":
        """The normalization recorded in ``meta["normalization"]``, or ``None`` when there is none."""
        norm = meta.get("normalization")
        return None if not norm else cls(tuple(norm["mean"]), tuple(norm["std"]))

    def to_meta(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}``, as stored in a set's ``meta``."""
        return {"mean": list(self.mean), "std": list(self.std)}

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel; ``ValueError`` if the channel counts differ."""
        if x.shape[1] != len(self.mean):
            raise ValueError(f"normalization has {len(self.mean)} channels, images have {x.shape[1]}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
