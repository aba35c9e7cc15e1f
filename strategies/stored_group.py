"""One (task, class) group of a :class:`~condense.strategies.CondensedBuffer`, as stored.

A group holds the rows a condensation method produced for one class, in the
space the experience's images were read in:

* ``images``: ``(n, C, H, W)``, every row exactly one image of the input's
  size, so it costs one image of the memory budget;
* ``formation_factor``: ``f > 1`` when each row packs ``f x f`` smaller tiles
  (IDC/IDM multi-formation); replay expands a row into ``f**2`` training images;
* ``soft_labels``: ``(n, K)`` learned logits over classes ``0..K-1`` (KRR,
  MTT), or ``None`` for hard labels; replay trains on their softmax.

Nothing here knows which method made the rows: it reads the typed fields of
the method's :class:`~condense.SyntheticSet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from condense.errors import CondenseError
from condense.formation import check_factor, expand_formation

# Logit that pads a soft-label row to more classes: softmax gives it exactly 0 in float32.
PAD_LOGIT = -1.0e4


@dataclass
class StoredGroup:
    """The stored rows of one group; see the module docstring."""

    images: torch.Tensor
    soft_labels: torch.Tensor | None = None
    formation_factor: int = 1

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise CondenseError(f"a buffer group holds (n, C, H, W) images, got shape {tuple(self.images.shape)}")
        check_factor(tuple(self.images.shape[-2:]), int(self.formation_factor))
        self.formation_factor = int(self.formation_factor)
        if self.soft_labels is not None:
            s = self.soft_labels
            if s.dim() != 2 or s.shape[0] != self.images.shape[0] or not torch.isfinite(s).all():
                raise CondenseError(
                    f"soft labels of a buffer group must be finite ({self.images.shape[0]}, K), got {tuple(s.shape)}"
                )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the stored images (what the budget counts)."""
        return self.images.numel() * self.images.element_size()

    @property
    def replay_size(self) -> int:
        """Training images this group expands into."""
        return len(self) * self.formation_factor**2

    def rows(self, index: torch.Tensor) -> "StoredGroup":
        soft = None if self.soft_labels is None else self.soft_labels[index].clone()
        return StoredGroup(self.images[index].clone(), soft, self.formation_factor)

    def clone(self) -> "StoredGroup":
        return self.rows(torch.arange(len(self)))

    def detached(self) -> "StoredGroup":
        """A CPU, contiguous copy (what the buffer keeps)."""
        soft = None if self.soft_labels is None else self.soft_labels.detach().cpu().float().contiguous()
        return StoredGroup(self.images.detach().cpu().float().contiguous(), soft, self.formation_factor)

    def expanded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(images, soft-label logits or None)`` as a model trains on them (formations expanded)."""
        dummy = torch.zeros(len(self), dtype=torch.long)
        x, _, soft = expand_formation(self.images, dummy, self.soft_labels, self.formation_factor)
        return x, soft


def soft_targets(groups: list[tuple[StoredGroup, int]], width: int) -> torch.Tensor:
    """Probability targets ``(sum of replay sizes, width)`` for ``(group, class)`` pairs in order:
    the softmax of a group's learned logits, or one-hot at its class for hard-label groups."""
    rows = []
    for group, cls in groups:
        _, soft = group.expanded()
        if soft is None:
            rows.append(F.one_hot(torch.full((group.replay_size,), cls, dtype=torch.long), width).float())
        else:
            if soft.shape[1] > width:
                raise CondenseError(f"soft labels over {soft.shape[1]} classes do not fit {width} outputs")
            padded = F.pad(soft, (0, width - soft.shape[1]), value=PAD_LOGIT)
            rows.append(F.softmax(padded, dim=1))
    return torch.cat(rows) if rows else torch.zeros(0, width)


def pad_logits(soft: torch.Tensor, width: int) -> torch.Tensor:
    """``soft`` widened to ``width`` classes with :data:`PAD_LOGIT`."""
    return F.pad(soft, (0, width - soft.shape[1]), value=PAD_LOGIT)
