"""Distribution matching (DM).

Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023.
"""

from __future__ import annotations

import torch

from condense.methods.base import Distiller, StepBatch
from condense.real_data import group_means
from condense.registry import register


@register("dm", "distribution matching", "match per-class mean embeddings under randomly initialised networks")
class DistributionMatching(Distiller):
    """Per class, the squared distance between the mean embedding of real and
    synthetic images, summed over classes, under a fresh random ConvNet each step.

    Defaults follow the paper (lr_img 1.0, momentum 0.5, 256 real images per
    class, real init, DSA). All classes go through one batched forward, and
    the real batch's forward runs without autograd (optionally in bfloat16).
    """

    def objective(self, batch: StepBatch) -> torch.Tensor:
        net = batch.net
        real_emb = self.embed_real(net, batch.real_x)
        syn_emb = net.embed(batch.syn_x)
        real_mean = group_means(real_emb, batch.real_groups, batch.num_groups)
        syn_mean = group_means(syn_emb, batch.syn_groups, batch.num_groups)
        return (real_mean - syn_mean).pow(2).sum()
