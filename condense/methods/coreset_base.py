"""Selection instead of synthesis: coresets return real images as a :class:`SyntheticSet`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch

from condense.features import real_features
from condense.methods.base import Condensed, Condenser
from condense.real_data import RealData
from condense.real_embedding import native_bf16


class CoresetSelector(Condenser):
    """Pick ``ipc`` real images per class, class by class, in a feature space.

    No real-data statistic: a coreset is a choice of real samples, so its output is the private data itself.

    Args:
        ipc: images per class.
        features: ``"trained"`` (a briefly trained ConvNet's embedding, the
            default), ``"random"`` (an untrained ConvNet) or ``"pixels"``.
        feature_epochs: epochs of that training.
        feature_fn: a function from normalized images to features; overrides
            ``features`` (e.g. the current model's ``embed`` in continual learning).
    """

    def __init__(
        self,
        ipc: int = 10,
        features: str = "trained",
        feature_epochs: int = 3,
        feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        device: str = "cpu",
        show_progress: bool = True,
    ) -> None:
        super().__init__(ipc=ipc, seed=seed, device=device, show_progress=show_progress)
        self.features = features
        self.feature_epochs = feature_epochs
        self.feature_fn = feature_fn

    @abstractmethod
    def select(self, feats: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """Positions (into ``feats``) of the ``k`` rows to keep, in selection order."""

    needs_features = True

    def compute_features(self, real: RealData) -> torch.Tensor:
        if self.feature_fn is not None:
            from condense.features import embed_all

            with torch.no_grad():
                return embed_all(self.feature_fn, real.x)
        return real_features(real, self.features, epochs=self.feature_epochs, seed=self.seed, device=self.device)

    def select_indices(self, real: RealData) -> torch.Tensor:
        """Indices into ``real.x`` of the selected images, ``ipc`` per class in class order."""
        feats = self.compute_features(real) if self.needs_features else None
        gen = self._generator(3)
        chosen = []
        for c in real.classes:
            idx = real.index_by_class[c]
            class_feats = feats[idx.to(feats.device)] if feats is not None else idx.view(-1, 1).float()
            pos = self.select(class_feats, self.ipc, gen).cpu()
            chosen.append(idx[pos])
        return torch.cat(chosen)

    def _condense(self, real: RealData) -> Condensed:
        index = self.select_indices(real)
        on_device = index.to(real.x.device)
        # Feature networks embed in bf16 where the hardware has it natively, so picks can differ by machine.
        networked = self.needs_features and self.feature_fn is None and self.features != "pixels"
        return Condensed(
            real.x[on_device].detach().cpu(),
            real.y[on_device].cpu(),
            meta={
                "selected_indices": index.tolist(),
                "feature_space": "custom" if self.feature_fn else self.features,
                "features_bf16": bool(networked and native_bf16(self.device)),
            },
        )
