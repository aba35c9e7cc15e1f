"""k-center greedy (Sener & Savarese, "Active Learning for CNNs: A Core-Set Approach", ICLR 2018)."""

from __future__ import annotations

import torch

from condense.methods.coreset_base import CoresetSelector
from condense.registry import register


def covering_radius(feats: torch.Tensor, centers: torch.Tensor) -> float:
    """Largest distance from any row of ``feats`` to its nearest chosen center."""
    return float(torch.cdist(feats.float(), feats[centers].float()).min(1).values.max())


@register("kcenter", "coreset", "greedy k-center: each pick is the image farthest from those picked")
class KCenterGreedy(CoresetSelector):
    """Start from the image nearest the class mean, then repeatedly add the
    image farthest from its nearest chosen center (a 2-approximation of the
    minimax covering radius)."""

    def select(self, feats: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        f = feats.float()
        first = int((f - f.mean(0)).pow(2).sum(1).argmin())
        picked = [first]
        nearest = (f - f[first]).pow(2).sum(1)
        # Picked rows get -inf (kept by minimum), so ties at distance 0 (duplicate
        # images) cannot make argmax return an index twice.
        nearest[first] = float("-inf")
        for _ in range(k - 1):
            i = int(nearest.argmax())
            picked.append(i)
            nearest = torch.minimum(nearest, (f - f[i]).pow(2).sum(1))
            nearest[i] = float("-inf")
        return torch.tensor(picked, dtype=torch.long)
