"""FedDM-style condensation: networks sampled around the received global weights.

Instead of a fresh random network each step (plain DM), the client matches
embeddings under ``global weights + noise``, so its synthetic set is informative
for the model the server currently has (Xiong et al., "FedDM", CVPR 2023).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from condense.methods.base import Condenser, Distiller
from condense.normalization import Normalization
from condense.samplers import NetworkSampler


class _Renormalize(nn.Module):
    """Maps inputs in the client's normalization to the server's before the global model.

    The core condenses in the client's own normalized space; the global model
    was trained in the server's. The map is affine, so gradients pass through.
    """

    def __init__(self, model: nn.Module, local: Normalization, server: Normalization | None) -> None:
        super().__init__()
        self.model = model
        lm, ls = torch.tensor(local.mean), torch.tensor(local.std)
        sm, ss = (torch.tensor(server.mean), torch.tensor(server.std)) if server else (torch.zeros_like(lm), torch.ones_like(ls))
        self.register_buffer("scale", (ls / ss).view(1, -1, 1, 1))
        self.register_buffer("shift", ((lm - sm) / ss).view(1, -1, 1, 1))

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(self._map(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._map(x))


class GlobalModelSampler(NetworkSampler):
    """Each step: the global weights plus Gaussian noise of ``radius`` x each tensor's RMS.

    ``radius=0`` gives the global model itself at every step.
    """

    def __init__(
        self,
        model: nn.Module,
        state_dict: dict[str, torch.Tensor],
        local: Normalization,
        server: Normalization | None,
        radius: float,
        device: str,
        generator: torch.Generator,
    ) -> None:
        self.state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in state_dict.items()}
        model.load_state_dict(self.state)
        self.net = _Renormalize(model, local, server).to(device)
        self.net.requires_grad_(False)
        self.radius = radius
        self.gen = generator

    def sample(self, step: int) -> nn.Module:
        if self.radius > 0:
            noisy = {}
            for key, value in self.state.items():
                if value.is_floating_point() and value.numel() > 1:
                    rms = value.pow(2).mean().sqrt()
                    value = value + self.radius * rms * torch.randn(value.shape, generator=self.gen)
                noisy[key] = value
            self.net.model.load_state_dict(noisy)
        return self.net.train()


def around_global_model(
    condenser: Condenser,
    build: Callable[[], nn.Module],
    state_dict: dict[str, torch.Tensor],
    server_normalization: Normalization | None,
    radius: float,
) -> Condenser:
    """A copy of ``condenser`` whose networks are sampled around ``state_dict``.

    Only :class:`Distiller` methods sample networks; coresets are returned as they are.
    """
    if not isinstance(condenser, Distiller):
        return condenser
    base = type(condenser)

    def make_sampler(self: Distiller, real, context=None) -> NetworkSampler:  # noqa: ANN001 (RealData, run context)
        gen = torch.Generator().manual_seed(self.seed + 7)
        return GlobalModelSampler(build(), state_dict, real.normalization, server_normalization, radius, self.device, gen)

    cls = type(f"Global{base.__name__}", (base,), {"make_sampler": make_sampler, "method_name": base.method_name})
    return cls(**copy.copy(condenser.get_params()))
