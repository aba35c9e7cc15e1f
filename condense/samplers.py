"""Where the network of each distillation step comes from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn

from condense.checkpoint import InvalidCheckpointError
from condense.seeding import reinitialize, step_generator

__all__ = ["NetworkSampler", "RandomInitSampler", "reinitialize", "step_generator"]


class NetworkSampler(ABC):
    """Gives the network (or whatever the objective needs) for step ``step``."""

    @abstractmethod
    def sample(self, step: int) -> nn.Module: ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint must keep to continue sampling as before (default: nothing).

        Samplers that train networks along the way or own a generator return them here.
        """
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise InvalidCheckpointError(f"{type(self).__name__} keeps no state, the checkpoint has {sorted(state)[:3]}")


class RandomInitSampler(NetworkSampler):
    """A freshly initialised network at every step (DM, CAFE, KRR, BPTT).

    The weights of step ``t`` are drawn from ``step_generator(seed, t, "net")``:
    they depend only on the seed and the step, so every worker (and a resumed
    run) draws the same network. The network is built once and re-initialised
    in place, which is much cheaper than building it anew. With ``frozen`` its
    weights need no gradient: only the synthetic images are learned.
    """

    def __init__(self, build: Callable[[], nn.Module], device: str, frozen: bool = True, seed: int = 0) -> None:
        self.net = build().to(device)
        self.frozen = frozen
        self.seed = seed
        if frozen:
            self.net.requires_grad_(False)

    def sample(self, step: int) -> nn.Module:
        net = reinitialize(self.net, step_generator(self.seed, step, "net"))
        return net.train()
