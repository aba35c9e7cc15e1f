"""Feature spaces in which coresets measure distances."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

from condense.models import build_model
from condense.real_data import RealData
from condense.training import TrainConfig, isolated_rng, train_classifier

FEATURE_SPACES = ("pixels", "random", "trained")
# The most recent feature matrices, keyed by everything that determines them:
# a benchmark selecting with herding and k-center at several IPCs and seeds pays
# once per seed. Bounded by bytes (MNIST's matrix is ~0.5 GB), newest kept.
_CACHE: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
_CACHE_BYTES = 2 * 1024**3


@torch.no_grad()
def embed_all(
    embed: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024, bf16: bool = False
) -> torch.Tensor:
    """``embed`` over ``x`` in batches, as float32 (computed in bfloat16 autocast with ``bf16``)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([embed(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)])


def real_features(
    real: RealData,
    space: str = "trained",
    model: str = "convnet",
    epochs: int = 3,
    train_per_class: int = 500,
    seed: int = 0,
    device: str = "cpu",
) -> torch.Tensor:
    """Features of every image of ``real``, one row per image.

    ``pixels``: the normalized pixels. ``random``: embeddings of a randomly
    initialised network. ``trained``: embeddings of a network trained for
    ``epochs`` on up to ``train_per_class`` images per class (iCaRL and the
    DC benchmark's herding use a trained network's features).
    """
    if space == "pixels":
        return real.x.flatten(1).float()
    if space not in FEATURE_SPACES:
        raise ValueError(f"unknown feature space '{space}': choose one of {FEATURE_SPACES}")
    key = (real.source.fingerprint(), real.normalization, space, model, epochs, train_per_class, seed, str(device))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    # Isolated so that computing (first call) and reading the cache (later calls)
    # leave the caller's RNG in the same state: repeated runs stay identical.
    with isolated_rng(device):
        torch.manual_seed(seed)
        net = build_model(model, tuple(real.x.shape[1:]), real.num_classes).to(device)
        if space == "trained":
            gen = torch.Generator().manual_seed(seed)
            x, y, _ = real.balanced_batch(train_per_class, gen)
            train_classifier(net, x, y, TrainConfig(epochs=epochs, batch_size=128, decay_at_half=False), device=device, generator=gen)
    net.eval()
    from condense.real_embedding import native_bf16

    feats = embed_all(net.embed, real.x, bf16=native_bf16(device))
    _CACHE[key] = feats
    while len(_CACHE) > 1 and sum(f.numel() * f.element_size() for f in _CACHE.values()) > _CACHE_BYTES:
        _CACHE.popitem(last=False)
    return feats
