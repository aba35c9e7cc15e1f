"""What a client does with the global model in FedAvg and hybrid rounds: train it on local data."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from condense.data.tensor_data import TensorData
from condense.models import build_model
from condense.training import TrainConfig, train_classifier
from condense.federated.round_config import RoundConfig


def build_global_model(model: str, model_kwargs: dict[str, Any], image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The one network every strategy of a run trains (server and clients build it alike)."""
    return build_model(model, tuple(image_shape), num_classes, **model_kwargs)


def train_local(model: nn.Module, data: TensorData, round_cfg: RoundConfig, seed: int, device: str = "cpu") -> nn.Module:
    """``local_epochs`` of SGD (momentum 0.9, no lr decay) on the client's data, in the server's normalization."""
    norm = round_cfg.server_normalization()
    x = norm.apply(data.x) if norm else data.x
    config = TrainConfig(
        epochs=round_cfg.local_epochs, lr=round_cfg.local_lr, momentum=0.9, weight_decay=5e-4,
        batch_size=round_cfg.local_batch, decay_at_half=False,
    )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    return train_classifier(model, x, data.y, config, device=device, generator=gen)
