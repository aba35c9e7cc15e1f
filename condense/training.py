"""Training and testing a classifier on tensors (used by evaluation, coresets, CL and FL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from condense.augment import SiameseAugment

# Images per forward on the CPU, for training and testing alike: small enough that a
# ConvNet-128's activations stay in cache (fastest of 8, 16, 32 and the whole batch per
# training epoch here; 8 and 16 about equal for the test pass).
CPU_MICRO_BATCH = 16


@contextlib.contextmanager
def isolated_rng(device: str | torch.device = "cpu") -> Iterator[None]:
    """Run the block with its own copy of the global RNG state, restored afterwards.

    For work whose result is cached (feature networks, expert buffers): the
    first, computing call must leave the global RNG where a cached call leaves
    it, or two identical runs in one process (or before and after the cache
    exists) draw different random numbers afterwards.
    """
    dev = torch.device(device)
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@dataclass
class TrainConfig:
    """The field's evaluation recipe: SGD with momentum and weight decay, lr x0.1 at half."""

    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_at_half: bool = True
    soft_label_temperature: float = 1.0
    # Images per forward/backward inside one SGD batch ("auto": 16 on the CPU when
    # the model has no batch statistics, else the whole batch). Same update, faster.
    micro_batch: int | str = "auto"


def uses_batch_statistics(model: nn.Module) -> bool:
    """Whether ``model`` normalises with statistics of the whole batch (BatchNorm),
    so that splitting a batch would change what it computes."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def micro_batch_size(model: nn.Module, config: TrainConfig, device: str | torch.device) -> int:
    """How many images one forward/backward of :func:`train_classifier` takes.

    On the CPU a whole batch's activations (a 256-image batch of ConvNet-128 on
    28x28 is ~0.5 GB) stream through memory several times per layer; chunks
    of 16 stay in cache, and summing their gradients gives the batch gradient
    exactly when every sample is normalised on its own (instance/group/layer
    norm). Measured: 1.3-1.8x per step on the CPU. On CUDA the whole batch is
    faster; BatchNorm models always take the whole batch.
    """
    if config.micro_batch != "auto":
        size = int(config.micro_batch)
        if size < 1:
            raise ValueError(f"micro_batch must be >= 1 or 'auto', got {config.micro_batch!r}")
        if uses_batch_statistics(model) and size < config.batch_size:
            raise ValueError("micro_batch smaller than batch_size would change a BatchNorm model's statistics")
        return size
    if torch.device(device).type != "cpu" or uses_batch_statistics(model):
        return config.batch_size
    return CPU_MICRO_BATCH


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig | None = None,
    soft_labels: torch.Tensor | None = None,
    augment: SiameseAugment | None = None,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``(x, y)``; with ``soft_labels`` (logits) the loss is
    the cross-entropy against their softmax instead of the hard labels."""
    config = config or TrainConfig()
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    target = None if soft_labels is None else F.softmax(soft_labels.to(device) / config.soft_label_temperature, 1)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    n = x.shape[0]
    micro = micro_batch_size(model, config, device)
    for epoch in range(config.epochs):
        if config.decay_at_half and epoch == config.epochs // 2 and epoch > 0:
            for group in opt.param_groups:
                group["lr"] *= 0.1
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            xb = x[idx]
            if augment is not None:
                xb = augment(xb, generator)  # the whole batch at once: the same draws as unchunked
            opt.zero_grad(set_to_none=True)
            for part in range(0, len(idx), micro):
                sl = slice(part, part + micro)
                out = model(xb[sl])
                if target is None:
                    loss = F.cross_entropy(out, y[idx[sl]], reduction="sum")
                else:
                    loss = -(target[idx[sl]] * F.log_softmax(out, 1)).sum()
                (loss / len(idx)).backward()  # the batch mean, accumulated chunk by chunk
            opt.step()
    return model


@torch.no_grad()
def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str | torch.device = "cpu", batch_size: int | None = None
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``; by default in batches of 16 on the
    CPU (cache-resident, ~2x faster than 1,024 there) and 1,024 elsewhere."""
    if batch_size is None:
        batch_size = CPU_MICRO_BATCH if torch.device(device).type == "cpu" else 1024
    model.to(device).eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(device)
        correct += int((model(xb).argmax(1).cpu() == y[start : start + batch_size]).sum())
    model.train()
    return correct / max(1, x.shape[0])
