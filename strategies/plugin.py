"""``CondensedReplayPlugin``: replay a :class:`CondensedBuffer` with any Avalanche strategy."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training.plugins import SupervisedPlugin

from condense.augment import SiameseAugment, default_strategy
from condense.strategies.buffer import CondensedBuffer

MODES = ("replay", "buffer-only")


class CondensedReplayPlugin(SupervisedPlugin):
    """Replays condensed images while a strategy (``Naive``, ``EWC``, ``LwF``, ...) trains.

    After every training experience the buffer condenses that experience
    (:meth:`CondensedBuffer.post_adapt`). Two modes:

    - ``"replay"``: each minibatch of the current experience is extended with
      buffer samples. Synthetic images are not a drop-in for real ones, so the
      mixing is explicit: ``buffer_share`` is the fraction of every mixed
      minibatch that comes from the buffer (0.5 = as many buffer samples as
      current ones, like Avalanche's ``ReplayPlugin``); ``buffer_loss_weight``
      scales the loss of buffer samples relative to current ones (the loss is
      ``(sum current + w * sum buffer) / n``, added on top of whatever the
      strategy and other plugins compute); ``augment=True`` applies DSA
      (random crop/scale/rotate/colour/cutout) to buffer samples only.
    - ``"buffer-only"``: GDumb-style. At each experience the model is reset to
      its initial weights, the experience is condensed into the buffer first,
      and the model is trained on the buffer alone for ``buffer_epochs``
      epochs (default: the strategy's ``train_epochs``), with DSA if ``augment``.

    Buffer samples are the buffer's training images (multi-formation rows
    expanded, :meth:`CondensedBuffer.replay_tensors`). When the buffer holds
    learned soft labels, the loss of buffer samples is the cross-entropy
    against their soft targets instead of the hard labels (in both modes; the
    strategy's criterion is assumed to be cross-entropy on the hard labels,
    as Avalanche's ``Naive``, ``EWC`` and ``LwF`` use).

    Args:
        buffer: the storage policy; or give ``mem_size`` (and ``buffer_kwargs``)
            and one is built.
        mode, buffer_share, buffer_loss_weight, augment, buffer_epochs: see above.
        seed: seeds the buffer sampling and augmentation.
    """

    def __init__(
        self,
        buffer: CondensedBuffer | None = None,
        mem_size: int | None = None,
        mode: str = "replay",
        buffer_share: float = 0.5,
        buffer_loss_weight: float = 1.0,
        augment: bool = False,
        buffer_epochs: int | None = None,
        seed: int = 0,
        **buffer_kwargs: Any,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= buffer_share < 1.0:
            raise ValueError(f"buffer_share must be in [0, 1), got {buffer_share}")
        if buffer_loss_weight < 0:
            raise ValueError(f"buffer_loss_weight must be >= 0, got {buffer_loss_weight}")
        if buffer_epochs is not None and buffer_epochs < 1:
            raise ValueError(f"buffer_epochs must be >= 1, got {buffer_epochs}")
        if buffer is None:
            if mem_size is None:
                raise ValueError("give a CondensedBuffer or mem_size")
            buffer = CondensedBuffer(mem_size, seed=seed, **buffer_kwargs)
        elif buffer_kwargs or (mem_size is not None and mem_size != buffer.max_size):
            raise ValueError("give either a buffer or mem_size/buffer settings, not both")
        self.storage_policy = buffer
        self.mode = mode
        self.buffer_share = buffer_share
        self.buffer_loss_weight = buffer_loss_weight
        self.augment = augment
        self.buffer_epochs = buffer_epochs
        self.seed = seed
        self.init_model: torch.nn.Module | None = None
        # Per-experience state, cleared after each experience (so checkpoints stay small and picklable).
        self._replay: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._targets: torch.Tensor | None = None  # soft targets of this iteration's buffer samples
        self._order: torch.Tensor | None = None
        self._cursor = 0
        self._n_buffer = 0
        self._saved_epochs: int | None = None
        self._gen: torch.Generator | None = None
        self._dsa: SiameseAugment | None = None

    @property
    def buffer(self) -> CondensedBuffer:
        return self.storage_policy

    # ------------------------------------------------------------ buffer-only
    def before_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if self.mode != "buffer-only":
            return
        if self.init_model is None:
            self.init_model = copy.deepcopy(strategy.model)
        else:
            strategy.model = copy.deepcopy(self.init_model)

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if self.mode != "buffer-only":
            return
        self.storage_policy.post_adapt(strategy, strategy.experience)
        strategy.adapted_dataset = self.storage_policy.training_dataset()
        if self.buffer_epochs is not None:
            self._saved_epochs = strategy.train_epochs
            strategy.train_epochs = self.buffer_epochs

    # ------------------------------------------------------------------ replay
    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._gen = torch.Generator().manual_seed(self.seed + 7919 * strategy.clock.train_exp_counter)
        if self.augment:
            x = self.storage_policy.replay_tensors()[0]
            channels = x.shape[1] if x.dim() == 4 and x.shape[0] else 1
            self._dsa = SiameseAugment(default_strategy(channels))
        if self.mode == "replay" and len(self.storage_policy) > 0 and self.buffer_share > 0:
            self._replay = self.storage_policy.replay_tensors()
            self._order = torch.randperm(self._replay[0].shape[0], generator=self._gen)
            self._cursor = 0

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._n_buffer = 0
        self._targets = None
        if self.mode == "buffer-only":
            if self._dsa is not None:
                strategy.mbatch[0] = self._augment(strategy.mbatch[0])
            if len(strategy.mbatch) == 4:  # (x, y, soft target, t): see CondensedBuffer.training_dataset
                self._n_buffer = strategy.mbatch[0].shape[0]
                self._targets = strategy.mbatch[2]
            return
        if self._replay is None:
            return
        n_cur = strategy.mbatch[0].shape[0]
        n_buf = max(1, round(n_cur * self.buffer_share / (1.0 - self.buffer_share)))
        idx = self._next_indices(n_buf)
        bx, by, bt = (v[idx] for v in self._replay[:3])
        if self._replay[3] is not None:
            self._targets = self._replay[3][idx]
        device = strategy.mbatch[0].device
        bx = bx.to(device)
        if self._dsa is not None:
            bx = self._augment(bx)
        mb = strategy.mbatch
        mb[0] = torch.cat([mb[0], bx.to(mb[0].dtype)])
        mb[1] = torch.cat([mb[1], by.to(device, mb[1].dtype)])
        if len(mb) > 2:
            mb[-1] = torch.cat([mb[-1], bt.to(device, mb[-1].dtype)])
        self._n_buffer = n_buf

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        # The strategy's criterion averaged the hard-label cross-entropy over all n samples;
        # replace the buffer part by w x (its soft-target cross-entropy, or the hard one).
        weight = self.buffer_loss_weight if self.mode == "replay" else 1.0
        if self._n_buffer == 0 or (weight == 1.0 and self._targets is None):
            return
        n = strategy.mb_output.shape[0]
        out_buf = strategy.mb_output[-self._n_buffer :]
        y_buf = strategy.mb_y[-self._n_buffer :]
        hard = F.cross_entropy(out_buf, y_buf)
        wanted = hard if self._targets is None else soft_cross_entropy(out_buf, self._targets.to(out_buf.device))
        strategy.loss = strategy.loss + (weight * wanted - hard) * self._n_buffer / n

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self._saved_epochs is not None:
            strategy.train_epochs = self._saved_epochs
            self._saved_epochs = None
        self._replay, self._order, self._gen, self._dsa, self._targets = None, None, None, None, None
        if self.mode == "replay":
            self.storage_policy.post_adapt(strategy, strategy.experience)

    # ----------------------------------------------------------------- helpers
    def _next_indices(self, n: int) -> torch.Tensor:
        """Cycle through the buffer in random order, reshuffling at the end (like a data loader)."""
        assert self._order is not None and self._gen is not None
        out = []
        while n > 0:
            if self._cursor >= self._order.numel():
                self._order = torch.randperm(self._order.numel(), generator=self._gen)
                self._cursor = 0
            take = self._order[self._cursor : self._cursor + n]
            out.append(take)
            self._cursor += take.numel()
            n -= take.numel()
        return torch.cat(out)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """DSA on a batch of buffer images (no gradient)."""
        assert self._dsa is not None
        with torch.no_grad():
            return self._dsa(x, self._gen)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` against probability ``targets`` (narrower targets are
    padded with zero probability; a wider head than the targets is the usual case)."""
    if targets.shape[1] < logits.shape[1]:
        targets = F.pad(targets, (0, logits.shape[1] - targets.shape[1]))
    elif targets.shape[1] > logits.shape[1]:
        raise ValueError(f"soft targets over {targets.shape[1]} classes for a model with {logits.shape[1]} outputs")
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
