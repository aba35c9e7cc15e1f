"""Multi-layer distribution matching (CAFE-style).

Wang et al., "CAFE: Learning to Condense Dataset by Aligning Features",
CVPR 2022.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from condense.layer_features import layer_features
from condense.loop_state import LoopState
from condense.methods.base import Distiller, StepBatch
from condense.real_data import group_means
from condense.registry import register
from condense.statistic import ClassStatistic


@register("cafe", "distribution matching", "match per-class mean features at every layer, plus a discrimination loss")
class CAFE(Distiller):
    """Per class and per layer, the squared distance between the mean feature of
    real and synthetic images (CAFE's layer-wise feature alignment), plus CAFE's
    discrimination loss: real images are classified by their (cosine) similarity
    to the per-class mean synthetic embedding, and the cross-entropy of that
    classification is minimised, so each synthetic class stays distinguishable.

    Real-data statistic: per class, the sum of every layer's features of the
    real images, concatenated. The discrimination loss reads the real side
    through it too: each class's *mean* real embedding (not each real image,
    as in the paper) is classified against the synthetic centres, weighted by
    the class's count, so a clipped, noised, streamed or sharded statistic
    serves the whole objective.

    Each layer's term is scaled by ``D_last / D_layer`` (feature sizes), so
    every layer weighs like DM's final-embedding term and ``lr_img`` keeps DM's
    scale.

    Defaults, and how they are scaled for the CPU: the paper trains the
    matching network on the synthetic set in an inner loop and runs thousands
    of outer steps with SGD on the images (lr 0.1 for MNIST). Here, as in DM,
    every step uses a freshly initialised frozen ConvNet (no inner loop, the
    most expensive part), SGD lr 1.0 / momentum 0.5 on the images (DM's values
    under the same per-layer scale), 256 real images per class, DSA, real
    initialisation, discrimination weight 0.1 (the paper's ``lambda`` 0.1 with
    temperature 0.1 on cosine similarities).

    Args:
        discrimination_weight: weight of the discrimination loss (0 disables it).
        temperature: temperature of the cosine-similarity logits.
        layer_weights: optional weight per layer (shallow to deep); default all 1.
        Other arguments: see :class:`condense.methods.base.Distiller`.
    """

    def __init__(
        self,
        ipc: int = 10,
        steps: int = 1000,
        lr_img: float = 1.0,
        momentum: float = 0.5,
        batch_real: int = 256,
        discrimination_weight: float = 0.1,
        temperature: float = 0.1,
        layer_weights: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ipc=ipc, steps=steps, lr_img=lr_img, momentum=momentum, batch_real=batch_real, **kwargs)
        self.discrimination_weight = discrimination_weight
        self.temperature = temperature
        self.layer_weights = layer_weights

    supports_statistic = True

    def sample_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Each real image's features of every layer, concatenated (shallow to deep)."""
        with self.real_forward():
            return torch.cat([f.float() for f in layer_features(net, x)], dim=1)

    def match(self, net: nn.Module, stat: ClassStatistic, batch: StepBatch, state: LoopState) -> torch.Tensor:
        k = batch.num_groups
        syn_feats = layer_features(net, batch.syn_x)
        weights = self.layer_weights or [1.0] * len(syn_feats)
        if len(weights) != len(syn_feats):
            raise ValueError(f"layer_weights has {len(weights)} entries, the network has {len(syn_feats)} layers")
        dims = [f.shape[1] for f in syn_feats]
        if sum(dims) != stat.sums.shape[1]:
            raise ValueError(f"the statistic has {stat.sums.shape[1]} features per class, the network's layers {sum(dims)}")
        real_means = torch.split(stat.means(), dims, dim=1)
        d_last = dims[-1]
        loss = syn_feats[-1].new_zeros(())
        for w, mr, fs in zip(weights, real_means, syn_feats):
            diff = mr - group_means(fs, batch.syn_groups, k)
            loss = loss + w * (d_last / fs.shape[1]) * diff.pow(2).sum()
        if self.discrimination_weight > 0:
            # Each class's mean real embedding is classified against the synthetic centres,
            # weighted by how many real samples it stands for.
            centers = F.normalize(group_means(syn_feats[-1], batch.syn_groups, k), dim=1)
            logits = F.normalize(real_means[-1], dim=1) @ centers.t() / self.temperature
            per_class = F.cross_entropy(logits, torch.arange(k, device=logits.device), reduction="none")
            weight = stat.counts.to(per_class.dtype)
            loss = loss + self.discrimination_weight * (per_class * weight).sum() / weight.sum().clamp_min(1)
        return loss
