"""Distribution matching (DM).

Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023.
"""

from __future__ import annotations

import torch
from torch import nn

from condense.loop_state import LoopState
from condense.methods.base import Distiller, StepBatch
from condense.real_data import group_means
from condense.registry import register
from condense.statistic import ClassStatistic


@register("dm", "distribution matching", "match per-class mean embeddings under randomly initialised networks")
class DistributionMatching(Distiller):
    """Per class, the squared distance between the mean embedding of real and
    synthetic images, summed over classes, under a fresh random ConvNet each step.

    Defaults follow the paper (lr_img 1.0, momentum 0.5, 256 real images per
    class, real init, DSA). All classes go through one batched forward, and
    the real batch's forward runs without autograd (optionally in bfloat16).
    Real-data statistic: per class, the sum of the real images' embeddings.
    """

    supports_statistic = True

    def sample_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Each real image's embedding (no autograd, bf16 where enabled)."""
        return self.embed_real(net, x).float()

    def match(self, net: nn.Module, stat: ClassStatistic, batch: StepBatch, state: LoopState) -> torch.Tensor:
        syn_mean = group_means(net.embed(batch.syn_x), batch.syn_groups, batch.num_groups)
        return (stat.means() - syn_mean).pow(2).sum()
