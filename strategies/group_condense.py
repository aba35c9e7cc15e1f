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
) -> dict[Group, torch.Tensor]:
    """Images for every group in ``targets``: ``targets[g]`` of them, in the space of ``x``.

    Groups of one task that share a target size are condensed together in one
    call of the registry method (so methods that look at all classes at once,
    like DM's shared random network, do). A group with fewer samples than its
    target raises :class:`InsufficientSamplesError` (``small_classes="error"``)
    or keeps all its samples (``"keep"``). A group already at or under its
    target is returned unchanged without running the method.
    """
    if small_classes not in SMALL_CLASS_POLICIES:
        raise ValueError(f"small_classes must be one of {SMALL_CLASS_POLICIES}, got {small_classes!r}")
    out: dict[Group, torch.Tensor] = {}
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
            out[(task, cls)] = x[idx].clone()
        else:
            buckets[(task, target)].append(cls)
    for (task, target), classes in sorted(buckets.items()):
        mask = (t == task) & torch.isin(y, torch.tensor(classes))
        data = TensorData(x[mask], y[mask], int(y.max()) + 1, None, f"{what}/task{task}")
        condenser = make_condenser(
            method, ipc=target, seed=seed, device=str(device), show_progress=show_progress, **(method_kwargs or {})
        )
        syn = condenser.condense(data)
        if syn.formation_factor > 1:
            raise CondenseError(
                f"method '{method}' stores images in a compressed formation; CondensedBuffer counts memory in "
                "images of the input's size and does not support formations"
            )
        images = syn.denormalized_images()  # back into the space the data came in
        for cls in classes:
            out[(task, cls)] = images[syn.labels == cls].clone()
    return out
