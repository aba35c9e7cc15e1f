"""What the server does with synthetic sets: train the global model on their union, and test it."""

from __future__ import annotations

import torch
from torch import nn

from condense.augment import SiameseAugment, default_strategy
from condense.synthetic_set import SyntheticSet
from condense.training import TrainConfig, accuracy, train_classifier


# Logit of the classes a hard label excludes, when hard- and soft-label sets train together:
# its softmax is exactly 0 in float32, so such a row's target is its one-hot label.
_HARD_LOGIT_OFF = -1.0e4


def union(sets: list[SyntheticSet]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Training images, hard labels and soft-label logits of all sets, concatenated (all in
    the server's normalization; formations expanded). The logits are ``None`` when no set
    has soft labels; otherwise rows of hard-label sets get logits whose softmax is one-hot."""
    xs, ys, softs = [], [], []
    for syn in sets:
        x, y, soft = syn.training_tensors()
        xs.append(x)
        ys.append(y)
        softs.append(soft)
    if all(s is None for s in softs):
        return torch.cat(xs), torch.cat(ys), None
    k = max(syn.num_classes for syn in sets)
    logits = []
    for y, soft in zip(ys, softs):
        if soft is None:
            soft = torch.full((y.shape[0], k), _HARD_LOGIT_OFF).scatter_(1, y.view(-1, 1), 0.0)
        logits.append(soft)
    return torch.cat(xs), torch.cat(ys), torch.cat(logits)


def train_on_sets(
    model: nn.Module,
    sets: list[SyntheticSet],
    epochs: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    dsa: bool = True,
    decay_at_half: bool = True,
    batch_size: int = 64,
) -> nn.Module:
    """Train ``model`` in place on the union of ``sets`` (SGD momentum 0.9, DSA), formations
    expanded; with learned soft labels in any set, against soft targets (see :func:`union`).

    Small batches: a union of a few hundred images at batch 256 gets too few
    SGD steps to converge at lr 0.01.
    """
    x, y, soft = union(sets)
    augment = SiameseAugment(default_strategy(x.shape[1])) if dsa else None
    config = TrainConfig(epochs=epochs, lr=lr, momentum=0.9, weight_decay=5e-4, batch_size=batch_size, decay_at_half=decay_at_half)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return train_classifier(model, x, y, config, soft_labels=soft, augment=augment, device=device, generator=gen)


def held_out_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str = "cpu") -> float:
    """Top-1 accuracy on the server's held-out split (already normalized)."""
    return accuracy(model, x, y, device)
