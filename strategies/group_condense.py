"""Condense labelled images into a given number of images per (task, class) group.

Used twice by :class:`~condense.strategies.CondensedBuffer`: to condense a new
experience (real data) and to shrink groups already in the buffer (their
synthetic images standing in for the real data, which is gone by then).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from condense.api import make_condenser
from condense.data import TensorData
from condense.errors import CondenseError, InsufficientSamplesError
from condense.strategies.stored_group import StoredGroup

Group = tuple[int, int]  # (task label, class label)
SMALL_CLASS_POLICIES = ("error", "keep")


def condense_groups(
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    targets: dict[Group, int],
    method: str,
    method_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
    small_classes: str = "error",
    what: str = "data",
) -> dict[Group, StoredGroup]:
    """Stored rows for every group in ``targets``: ``targets[g]`` of them, in the space of ``x``.

    Each row is one image of the input's size; a method that stores
    multi-formation images (``formation_factor > 1``) or learns soft labels
    gives groups that carry them (see :class:`StoredGroup`).

    Groups of one task that share a target size are condensed together in one
    call of the registry method (so methods that look at all classes at once,
    like DM's shared random network, do). A group with fewer samples than its
    target raises :class:`InsufficientSamplesError` (``small_classes="error"``)
    or keeps all its samples (``"keep"``). A group already at or under its
    target is returned unchanged without running the method.
    """
    if small_classes not in SMALL_CLASS_POLICIES:
        raise ValueError(f"small_classes must be one of {SMALL_CLASS_POLICIES}, got {small_classes!r}")
    out: dict[Group, StoredGroup] = {}
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (task, cls), target in sorted(targets.items()):
        idx = torch.nonzero((t == task) & (y == cls)).flatten()
        n = idx.numel()
        if n == 0:
            raise CondenseError(f"{what}: no samples of class {cls} (task {task}) to condense")
        if n < target and small_classes == "error":
            raise InsufficientSamplesError(
                f"{what}: class {cls} (task {task}) has {n} samples but its share of the buffer is {target}; "
                "pass small_classes='keep' to store all of them instead"
            )
        if n <= target:
            out[(task, cls)] = StoredGroup(x[idx].clone())
        else:
            buckets[(task, target)].append(cls)
    for (task, target), classes in sorted(buckets.items()):
        mask = (t == task) & torch.isin(y, torch.tensor(classes))
        data = TensorData(x[mask], y[mask], int(y.max()) + 1, None, f"{what}/task{task}")
        condenser = make_condenser(
            method, ipc=target, seed=seed, device=str(device), show_progress=show_progress, **(method_kwargs or {})
        )
        syn = condenser.condense(data)
        if syn.image_shape != tuple(x.shape[1:]):
            raise CondenseError(f"method '{method}' made images of shape {syn.image_shape}, the data's are {tuple(x.shape[1:])}")
        # Back into the space the data came in; per-channel affine, so it commutes with formation expansion.
        images = syn.denormalized_images()
        factor = syn.formation_factor
        for cls in classes:
            rows = syn.labels == cls
            soft = None if syn.soft_labels is None else syn.soft_labels[rows].clone()
            out[(task, cls)] = StoredGroup(images[rows].clone(), soft, factor)
    return out
