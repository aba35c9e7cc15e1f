"""The estimator contract every method follows, and the one distillation loop.

Constructors only store hyperparameters (as scikit-learn estimators do);
:meth:`Condenser.fit` does the work and sets ``synthetic_set_``. A failed or
interrupted ``fit`` leaves the previous ``synthetic_set_`` untouched.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from condense.augment import AugmentParams, SiameseAugment, default_strategy
from condense.checkpoint import InvalidCheckpointError, LoopCheckpoint
from condense.data.adapters import as_tensor_data
from condense.divergence import check_not_diverged
from condense.errors import InvalidParameterError, require_int
from condense.models import build_model
from condense.learned_step_size import LearnedStepSize
from condense.loop_state import OPTIMIZERS, LearnedTensor, LoopState, make_optimizer
from condense.progress import progress
from condense.real_data import RealData
from condense.normalization import Normalization
from condense.real_embedding import RealEmbedder
from condense.seeding import step_generator
from condense.samplers import NetworkSampler, RandomInitSampler
from condense.serialization import json_safe
from condense.statistic import BatchStatistic, ClassStatistic, StatisticSource, StatisticUnsupportedError
from condense.synthetic_set import SyntheticSet
from condense.training import isolated_rng


# Hyperparameters that say how a run is shown or placed, not what it makes.
RUN_SETTINGS = ("show_progress", "callback", "device")


def result_hyperparameters(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without :data:`RUN_SETTINGS`: the hyperparameters that decide what a run makes."""
    return {k: v for k, v in params.items() if k not in RUN_SETTINGS}


@dataclass
class Condensed:
    """What a method's core returns before it becomes a :class:`SyntheticSet`."""

    images: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    formation_factor: int = 1
    learned_lr: float | None = None  # a step size learned for the run's network (MTT)


class Condenser(ABC):
    """Base of every method: synthesis (distillation) and selection (coresets) alike."""

    method_name: ClassVar[str] = "?"
    # Methods whose real side is a sum over samples set this and implement sample_statistic/match
    # (see condense.statistic); features that need the statistic (privacy, streams, shards) call
    # require_statistic() and refuse the others by name.
    supports_statistic: ClassVar[bool] = False

    def require_statistic(self) -> None:
        """Raise :class:`StatisticUnsupportedError` naming the method unless it has a real-data statistic."""
        if not self.supports_statistic:
            raise StatisticUnsupportedError(self._no_statistic_reason())

    def _no_statistic_reason(self) -> str:
        why = ""
        for klass in type(self).__mro__:  # the nearest class whose docstring says why
            lines = (inspect.getdoc(klass) or "").splitlines() if "__doc__" in klass.__dict__ else []
            found = [line.strip() for line in lines if line.strip().lower().startswith("no real-data statistic")]
            if found:
                why = found[0].split(":", 1)[1].strip() if ":" in found[0] else ""
                break
        return f"method '{self.method_name}' has no real-data statistic" + (f": {why}" if why else "")
    # Fewest classes the data must hold for fit to work (a method regressing onto class targets needs 2).
    min_classes: ClassVar[int] = 1

    def __init__(self, ipc: int = 10, seed: int = 0, device: str = "cpu", show_progress: bool = True) -> None:
        self.ipc = ipc
        self.seed = seed
        self.device = device
        self.show_progress = show_progress

    # ------------------------------------------------------- estimator contract
    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return names

    def min_samples_per_class(self) -> int:
        """Real samples a class needs for :meth:`fit` to condense it: ``ipc`` (more for a
        method that starts each stored image from several real ones)."""
        return int(self.ipc)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to the constructor."""
        return {name: getattr(self, name) for name in self._param_names() if hasattr(self, name)}

    def set_params(self, **params: Any) -> "Condenser":
        """Set hyperparameters by name (unknown names raise ``ValueError``); returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter '{key}'")
            setattr(self, key, value)
        return self

    def fit(
        self, data: Any, num_classes: int | None = None, *, normalization: Normalization | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int = 100,
    ) -> "Condenser":
        """Condense ``data`` (anything :func:`condense.data.as_tensor_data` takes).

        ``normalization``: the per-channel normalization to work in (shards,
        streams and clients pass one shared value); ``None`` computes it once
        from ``data``. Either way it is recorded in the set's ``normalization``.
        The run draws every random number from generators derived from
        ``seed`` and leaves torch's global generator as it found it.

        With ``checkpoint``, a distillation run saves its state to that file every
        ``checkpoint_every`` steps and after the last, and a run that finds the
        file continues from it (see :mod:`condense.checkpoint`). Selection
        methods finish in one pass and write none.
        """
        require_int("ipc", self.ipc, 1)  # before any work: ipc=2.0 would fail deep inside as a TypeError
        require_int("checkpoint_every", checkpoint_every, 1)
        source = as_tensor_data(data, num_classes)
        start = time.perf_counter()
        self._run = RunOptions(None if checkpoint is None else Path(checkpoint), checkpoint_every, source.fingerprint(), start)
        try:
            # Every draw comes from generators derived from ``seed``; building networks still touches
            # torch's global generator, so the run works on a copy and leaves the caller's as it was.
            with isolated_rng(self.device):
                real = RealData.prepare(source, self.device, normalization=normalization, ipc=self.ipc)
                out = self._condense(real)
            check_not_diverged(self.method_name, out.images, real.x)
        finally:
            self._run = RunOptions()
        earlier = out.meta.get("resumed", {}).get("earlier_seconds", 0.0)
        meta = {
            "method": self.method_name,
            "ipc": self.ipc,
            "seed": self.seed,
            "hyperparameters": json_safe(self.get_params()),
            "source": {"name": source.name, "fingerprint": source.fingerprint(), "samples": len(source)},
            "image_shape": list(source.image_shape),
            "class_names": source.class_names,
            # over every part of a resumed run
            "seconds": round(time.perf_counter() - start + earlier, 3),
            **out.meta,
        }
        learned_lr = None
        if out.learned_lr is not None:
            learned_lr = LearnedStepSize(out.learned_lr, getattr(self, "model", None), json_safe(getattr(self, "model_kwargs", None) or {}))
        # Built completely before it replaces the previous result.
        self.synthetic_set_ = SyntheticSet(
            out.images, out.labels, source.num_classes, out.soft_labels, meta, formation_factor=out.formation_factor,
            learned_lr=learned_lr, normalization=real.normalization,
        )
        return self

    def condense(self, data: Any, num_classes: int | None = None, **fit_options: Any) -> SyntheticSet:
        """``fit(data, ...).synthetic_set_``."""
        return self.fit(data, num_classes, **fit_options).synthetic_set_

    @abstractmethod
    def _condense(self, real: RealData) -> Condensed:
        """Produce ``ipc`` images for every class present in ``real``."""

    def _generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + offset)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass
class RunOptions:
    """Settings of one ``fit`` call that are not hyperparameters (they do not change the result)."""

    checkpoint: Path | None = None
    checkpoint_every: int = 100
    source_fingerprint: str = ""
    started: float = 0.0


@dataclass
class StepBatch:
    """Everything an objective sees at one step of the loop."""

    step: int
    net: Any
    real_x: torch.Tensor | None  # None for methods that read no real batch (uses_real_batch = False)
    real_y: torch.Tensor | None
    real_groups: torch.Tensor | None
    syn_x: torch.Tensor
    syn_y: torch.Tensor
    syn_groups: torch.Tensor
    num_groups: int
    syn_soft: torch.Tensor | None = None


class Distiller(Condenser):
    """Synthesis by the one loop::

        state <- init_state(real)                     # images, learned tensors, optimizer, sampler, generators
        for t in range(steps):
            net  <- sampler.sample(t)
            stat <- source.statistic(net, augment(real batch))   # methods with a real-data statistic
            loss <- match(net, stat, augment(expand(S)))         # or objective(batch) for the others
            S    <- optimizer step on loss

    Subclasses with a real-data statistic (``supports_statistic = True``)
    implement :meth:`sample_statistic` (or :meth:`real_statistic`) and
    :meth:`match`; the others implement :meth:`objective`. Where they need
    more they override :meth:`make_sampler`, :meth:`learned_tensors`,
    :meth:`make_generators`, :meth:`prepare`, :meth:`after_step` and
    :meth:`finish`; they keep no per-run state on themselves.

    Args:
        ipc: synthetic images per class.
        steps: outer optimisation steps.
        lr_img: learning rate of the synthetic images.
        momentum: SGD momentum of the synthetic images (Adam ignores it).
        batch_real: real images per class in each step.
        init: ``"real"`` (random real images), ``"noise"``, or a coreset method
            name (``"herding"``, ``"kcenter"``) whose selection starts the set.
        dsa: differentiable siamese augmentation on both batches.
        dsa_strategy: DSA transforms; default drops flips for 1-channel data.
        model: network family (``convnet``, ``mlp``, ``resnet``); ``model_kwargs`` go to it.
        amp: ``"bf16"`` runs the no-grad real-data forward in bfloat16 autocast
            (faster on CPUs with AVX-512 BF16 or AMX, and on GPUs); ``"auto"``
            does so where the device supports bfloat16 natively; ``None`` never.
        compile_real: fuse the no-grad real-data forward with ``torch.compile``
            (compiled once per architecture, about 5-15 s; falls back to eager
            with a warning where compiling fails). ``"auto"``: only for runs of
            at least 500 steps, where the compile time pays off.
        optimizer: ``"sgd"`` (default) or ``"adam"`` for the images and the learned tensors.
        seed, device, show_progress: reproducibility, placement, tqdm bar.
        callback: called as ``callback(step, images, labels)`` after every step,
            with copies (safe to keep). ``meta["amp_resolved"]`` records whether
            the real-data forward ran in ``"bf16"`` or float32 (``None``).
    """

    # Methods whose objective reads no real batch (MTT reads expert trajectories)
    # set this to False, and the loop skips drawing and augmenting one.
    uses_real_batch: ClassVar[bool] = True
    # Methods that read no augmented synthetic batch (MTT augments inside its student) set this to False.
    uses_synthetic_batch: ClassVar[bool] = True
    # How often (in steps) the loss is read from the device for the progress bar.
    LOSS_READ_EVERY: ClassVar[int] = 10

    def __init__(
        self,
        ipc: int = 10,
        steps: int = 1000,
        lr_img: float = 1.0,
        momentum: float = 0.5,
        batch_real: int = 256,
        init: str = "real",
        dsa: bool = True,
        dsa_strategy: str | None = None,
        model: str = "convnet",
        model_kwargs: dict[str, Any] | None = None,
        amp: str | None = "auto",
        compile_real: bool | str = "auto",
        optimizer: str = "sgd",
        seed: int = 0,
        device: str = "cpu",
        show_progress: bool = True,
        callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    ) -> None:
        super().__init__(ipc=ipc, seed=seed, device=device, show_progress=show_progress)
        self.steps = steps
        self.lr_img = lr_img
        self.momentum = momentum
        self.batch_real = batch_real
        self.init = init
        self.dsa = dsa
        self.dsa_strategy = dsa_strategy
        self.model = model
        self.model_kwargs = model_kwargs
        self.amp = amp
        self.compile_real = compile_real
        self.optimizer = optimizer
        self.callback = callback

    # ----------------------------------------------------------------- hooks
    def objective(self, batch: StepBatch, state: LoopState) -> torch.Tensor:
        """The loss of a method without a real-data statistic (differentiable in ``batch.syn_x``)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither objective nor match")

    def sample_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """``(B, D)``: each real sample's contribution to the statistic, without autograd."""
        raise StatisticUnsupportedError(self._no_statistic_reason())

    def real_statistic(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor,
                       num_groups: int) -> ClassStatistic:
        """Per-class sums and counts of :meth:`sample_statistic` over a real batch (methods may sum faster)."""
        if not self.supports_statistic:
            raise StatisticUnsupportedError(self._no_statistic_reason())
        return ClassStatistic.from_samples(self.sample_statistic(net, x, y, groups), groups, num_groups)

    def match(self, net: nn.Module, stat: ClassStatistic, batch: StepBatch, state: LoopState) -> torch.Tensor:
        """The synthetic side and its distance to ``stat``; differentiable in ``batch.syn_x``."""
        raise StatisticUnsupportedError(self._no_statistic_reason())

    def prepare(self, real: RealData) -> dict[str, Any]:
        """Run-scoped objects the other hooks read through ``state.context`` (default: none)."""
        return {}

    def make_sampler(self, real: RealData, context: dict[str, Any] | None = None) -> NetworkSampler:
        """Default: a freshly initialised, frozen network each step."""
        return RandomInitSampler(lambda: self.build_network(real), self.device, frozen=True, seed=self.seed)

    def learned_tensors(self, real: RealData, images: torch.Tensor, context: dict[str, Any]) -> dict[str, LearnedTensor]:
        """What the method learns besides the images (soft labels, step sizes), by name."""
        return {}

    def make_generators(self) -> dict[str, torch.Generator]:
        """Named generators the method draws from across steps (saved in checkpoints)."""
        return {}

    def expand_synthetic(
        self, syn: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training images the stored ``syn`` stand for (differentiably), before augmentation.

        Default: the stored images themselves. IDM expands a multi-formation here.
        """
        return syn, labels, groups

    def after_step(self, state: LoopState, batch: StepBatch) -> None:
        """Runs after the update of the synthetic set (e.g. DC's inner loop)."""

    def finish(self, state: LoopState) -> Condensed:
        """Package the result; methods that learn labels or step sizes add them here."""
        return Condensed(state.images.detach().cpu(), state.labels.cpu())

    # --------------------------------------------------------------- helpers
    def build_network(self, real: RealData) -> nn.Module:
        return build_model(self.model, tuple(real.x.shape[1:]), real.num_classes, **(self.model_kwargs or {}))

    def augmenter(self, real: RealData) -> SiameseAugment | None:
        """The run's DSA transform (``None`` without ``dsa``)."""
        return SiameseAugment(self.dsa_strategy or default_strategy(real.x.shape[1])) if self.dsa else None

    def real_forward(self) -> contextlib.AbstractContextManager[Any]:
        """No-grad (and, with ``amp="bf16"``, bfloat16) context for real-data forwards."""
        return self._real_embedder().autocast()

    def embed_real(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net.embed(x)`` for the real batch: no autograd, bf16 where enabled, chunked, maybe compiled."""
        return self._real_embedder().embed(net, x)

    def _real_embedder(self) -> RealEmbedder:
        # A cache of compiled forwards, keyed by the parameters it was built from (not run state).
        compile_real = self.compile_real is True or (self.compile_real == "auto" and self.steps >= 500)
        key = (str(self.device), self.amp, compile_real)
        cached = self.__dict__.get("_embedder_cache")
        if cached is None or cached[0] != key:
            cached = (key, RealEmbedder(self.device, self.amp, compile=compile_real))
            self.__dict__["_embedder_cache"] = cached
        return cached[1]

    def initial_images(self, real: RealData) -> torch.Tensor:
        """``ipc`` starting images per class, ordered by class."""
        gen = self._generator(1)
        if self.init == "real":
            picks = [real.index_by_class[c][torch.randperm(real.index_by_class[c].numel(), generator=gen)[: self.ipc]] for c in real.classes]
            return real.x[torch.cat(picks).to(real.x.device)].detach().clone()
        if self.init == "noise":
            shape = (len(real.classes) * self.ipc, *real.x.shape[1:])
            return torch.randn(shape, generator=gen).to(real.x.device)
        from condense.registry import get_method

        info = get_method(self.init)
        from condense.methods.coreset_base import CoresetSelector

        if not issubclass(info.cls, CoresetSelector):
            raise ValueError(f"init must be 'real', 'noise' or a coreset method, got '{self.init}'")
        selector = info.cls(ipc=self.ipc, seed=self.seed, device=self.device, show_progress=False)
        return real.x[selector.select_indices(real).to(real.x.device)].detach().clone()

    # ------------------------------------------------------------ the loop
    def init_state(self, real: RealData) -> LoopState:
        """Create the loop's state for ``real``: images, learned tensors, optimizer, sampler, generators."""
        require_int("steps", self.steps, 0)  # 0: the initial images as they are (used to compare inits)
        if self.uses_real_batch:
            # 0 would make DC a silent no-op, and -5 would slice off all but 5 images.
            require_int("batch_real", self.batch_real, 1)
        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        k = len(real.classes)
        context = self.prepare(real)
        images = self.initial_images(real).requires_grad_(True)
        groups = torch.arange(k, device=images.device).repeat_interleave(self.ipc)
        labels = torch.tensor(real.classes, device=images.device).repeat_interleave(self.ipc)
        sampler = self.make_sampler(real, context)
        declared = self.learned_tensors(real, images, context)
        param_groups: list[dict[str, Any]] = [{"params": [images], "lr": self.lr_img, "momentum": self.momentum}]
        for spec in declared.values():
            if spec.trainable:
                spec.value.requires_grad_(True)
                momentum = self.momentum if spec.momentum is None else spec.momentum
                param_groups.append({"params": [spec.value], "lr": spec.lr, "momentum": momentum})
        opt = make_optimizer(self.optimizer, param_groups, self.lr_img, self.momentum)
        return LoopState(
            images=images, labels=labels, groups=groups, classes=list(real.classes),
            learned={name: spec.value for name, spec in declared.items()}, optimizer=opt, sampler=sampler,
            generator=self._generator(2), generators=self.make_generators(), augment=self.augmenter(real),
            context={"real": real, **context},
        )

    def step_generator(self, state: LoopState, stream: str) -> torch.Generator:
        """The generator of ``stream`` (``"batch"``, ``"augment"``, ...) at step ``state.step``:
        it depends only on ``(seed, step, stream)``, so every worker draws the same."""
        return step_generator(self.seed, state.step, stream)

    def step(self, state: LoopState, source: StatisticSource | RealData | None = None) -> torch.Tensor:
        """Advance ``state`` by one step; returns the step's loss (on the device).

        ``source`` gives the real-data statistic (default: a class-balanced batch
        of the run's real data, :class:`condense.statistic.BatchStatistic`). A
        method without a statistic accepts only that default (it reads the real
        batch itself) and raises :class:`StatisticUnsupportedError` for any other.
        """
        if source is None or isinstance(source, RealData):
            source = BatchStatistic(source or state.context["real"])
        if not self.supports_statistic and self.uses_real_batch and not isinstance(source, BatchStatistic):
            self.require_statistic()
        t, k = state.step, state.num_groups
        net = state.sampler.sample(t)
        if self.uses_synthetic_batch:
            xs, ys, gs = self.expand_synthetic(state.images, state.labels, state.groups)
        else:
            xs, ys, gs = state.images, state.labels, state.groups
        aug: AugmentParams | None = None
        if state.augment is not None and self.uses_synthetic_batch:
            aug = state.augment.sample(k, tuple(xs.shape[-2:]), self.step_generator(state, "augment"))
            xs = state.augment.apply(xs, aug, gs)
        if self.supports_statistic:
            stat = source.statistic(self, net, state, aug)
            batch = StepBatch(t, net, None, None, None, xs, ys, gs, k)
            loss = self.match(net, stat, batch, state)
        else:
            xr = yr = gr = None
            if self.uses_real_batch:
                xr, yr, gr = source.batch(self, state)  # type: ignore[union-attr]
                if aug is not None:
                    xr = state.augment.apply(xr, aug, gr)  # type: ignore[union-attr]
            batch = StepBatch(t, net, xr, yr, gr, xs, ys, gs, k)
            loss = self.objective(batch, state)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.record_loss(loss)
        self.after_step(state, batch)
        state.step = t + 1
        if self.callback is not None:
            # A copy: the optimizer updates the images in place, so a stored view would
            # later show the final images instead of this step's.
            self.callback(t, state.images.detach().clone(), state.labels.clone())
        return loss

    def _condense(self, real: RealData) -> Condensed:
        run: RunOptions = getattr(self, "_run", None) or RunOptions()
        state = self.init_state(real)
        saved = self._saved_checkpoint(run, real)
        earlier = 0.0
        if saved is not None:
            state.load_state_dict(saved.arrays)
            state.step, state.losses, earlier = saved.step, list(saved.losses), saved.elapsed_seconds
        first = state.step
        bar = progress(range(first, self.steps), self.show_progress, desc=self.method_name, initial=first, total=self.steps)
        for step in bar:
            self.step(state)
            if run.checkpoint is not None and ((step + 1) % run.checkpoint_every == 0 or step + 1 == self.steps):
                LoopCheckpoint(
                    step + 1, self._checkpoint_identity(run, real), list(state.read_losses()),
                    earlier + time.perf_counter() - run.started, state.state_dict(),
                ).save(run.checkpoint)
            if hasattr(bar, "set_postfix") and step % self.LOSS_READ_EVERY == 0:
                bar.set_postfix(loss=f"{state.read_losses()[-1]:.4g}")
        losses = state.read_losses()
        out = self.finish(state)
        out.meta.setdefault("final_loss", losses[-1] if losses else None)
        out.meta.setdefault("steps_run", len(losses))
        if saved is not None:
            out.meta["resumed"] = {"from_step": saved.step, "earlier_seconds": round(earlier, 3)}
        # amp="auto" means bf16 only where the hardware has it, so record what ran.
        out.meta.setdefault("amp_resolved", "bf16" if self._real_embedder().bf16 else None)
        return out

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_identity(self, run: RunOptions, real: RealData) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: everything that shapes the result but ``steps``."""
        params = result_hyperparameters(json_safe(self.get_params()))
        params.pop("steps", None)
        return {"method": self.method_name, "hyperparameters": params, "source": run.source_fingerprint,
                "classes": list(real.classes), "normalization": real.normalization.to_meta()}

    def _saved_checkpoint(self, run: RunOptions, real: RealData) -> LoopCheckpoint | None:
        """The checkpoint to resume from, checked against this run; ``None`` when there is no file yet."""
        if run.checkpoint is None or not run.checkpoint.exists():
            return None
        saved = LoopCheckpoint.load(run.checkpoint)
        saved.check_identity(self._checkpoint_identity(run, real), run.checkpoint)
        if saved.step > self.steps:
            raise InvalidCheckpointError(
                f"{run.checkpoint} is at step {saved.step}, beyond steps={self.steps}: ask for at least {saved.step} steps"
            )
        return saved
