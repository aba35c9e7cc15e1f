"""FedDM-style condensation: networks sampled around the received global weights.

Instead of a fresh random network each step (plain DM), the client matches
embeddings under ``global weights + noise``, so its synthetic set is informative
for the model the server currently has (Xiong et al., "FedDM", CVPR 2023).

The client condenses in the server's normalization (passed to ``fit``), the
space the global model was trained in, so the global model is used as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from condense.errors import CondenseError
from condense.methods.base import Condenser, Distiller
from condense.normalization import Normalization
from condense.samplers import NetworkSampler


class GlobalModelSampler(NetworkSampler):
    """Each step: the global weights plus Gaussian noise of ``radius`` x each tensor's RMS.

    ``radius=0`` gives the global model itself at every step.
    """

    def __init__(
        self,
        model: nn.Module,
        state_dict: dict[str, torch.Tensor],
        radius: float,
        device: str,
        generator: torch.Generator,
    ) -> None:
        self.state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in state_dict.items()}
        model.load_state_dict(self.state)
        self.net = model.to(device)
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
            self.net.load_state_dict(noisy)
        return self.net.train()


def samples_fresh_networks(condenser: Condenser) -> bool:
    """Whether the method draws its networks from the loop's default sampler (a fresh random
    network per step), which FedDM replaces; a method with a sampler of its own (networks
    trained along, a trained queue, expert trajectories) keeps it."""
    return isinstance(condenser, Distiller) and type(condenser).make_sampler is Distiller.make_sampler


def around_global_model(
    condenser: Condenser,
    build: Callable[[], nn.Module],
    state_dict: dict[str, torch.Tensor],
    server_normalization: Normalization | None,
    radius: float,
) -> Condenser:
    """A copy of ``condenser`` whose networks are sampled around ``state_dict``.

    Only methods that sample fresh networks (:func:`samples_fresh_networks`) change;
    the others (coresets, methods with their own sampler) are returned as they are.
    The copy must be fitted with ``normalization=server_normalization``.
    """
    if not samples_fresh_networks(condenser):
        return condenser
    base = type(condenser)

    def make_sampler(self: Distiller, real, context=None) -> NetworkSampler:  # noqa: ANN001 (RealData, run context)
        if server_normalization is not None and real.normalization != server_normalization:
            raise CondenseError("condensation around the global model must run in the server's normalization "
                                "(pass normalization= to fit)")
        gen = torch.Generator().manual_seed(self.seed + 7)
        return GlobalModelSampler(build(), state_dict, radius, self.device, gen)

    cls = type(f"Global{base.__name__}", (base,), {"make_sampler": make_sampler, "method_name": base.method_name})
    return cls(**copy.copy(condenser.get_params()))
