"""Per-step random generators: what a step draws depends only on ``(seed, step, stream)``.

Every random draw of a distillation run comes from a generator derived here
from the method's ``seed``, never from torch's global generator, so that

* a worker that knows the seed and the step draws the same network as every
  other worker (sharded condensation sums statistics computed under it);
* a run resumed at step ``t`` draws what the uninterrupted run drew at ``t``;
* the host program's global generator (an Avalanche strategy's, a Flower
  client's) is left as it was.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

_MASK = (1 << 63) - 1


def derive_seed(seed: int, step: int, stream: str = "") -> int:
    """A 63-bit seed that depends only on ``(seed, step, stream)`` (SHA-256 of the three)."""
    digest = hashlib.sha256(f"{int(seed)}/{int(step)}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK


def step_generator(seed: int, step: int, stream: str = "", device: str | torch.device = "cpu") -> torch.Generator:
    """A generator that depends only on ``(seed, step, stream)``.

    ``stream`` names the use (``"net"``, ``"batch"``, ``"augment"``, ``"noise"``,
    ...), so different uses of one step do not share draws.
    """
    return torch.Generator(device=device).manual_seed(derive_seed(seed, step, stream))


def reinitialize(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Fresh weights for every layer of ``net``, drawn from ``generator`` (in place; returns ``net``).

    Each layer's own ``reset_parameters`` runs (so every layer keeps its usual
    initial distribution) inside a fork of torch's global generators seeded
    from ``generator``: the global state is restored afterwards, untouched.
    """
    seed = int(torch.randint(0, _MASK, (1,), generator=generator))
    devices = sorted({p.device.index or 0 for p in net.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)  # not torch.manual_seed: that also reseeds every GPU
        for index in devices:
            torch.cuda.default_generators[index].manual_seed(seed)
        for module in net.modules():
            if module is not net and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return net
