"""One continual-learning run: a stream, a strategy, a buffer, Avalanche's metrics.

Shared by ``condense cl``, the demo section and ``benchmarks/cl_split_mnist.py``
so that all three measure the same thing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from condense.errors import CondenseError

AVALANCHE_BUFFERS = ("none", "avalanche-random", "avalanche-herding")
STRATEGIES = ("naive", "ewc", "lwf")


@dataclass
class CLConfig:
    """What to run. ``buffer`` is ``none`` (no replay), ``avalanche-random``
    (Avalanche's ``ReplayPlugin``; with ``mode="buffer-only"`` its ``GDumbPlugin``),
    ``avalanche-herding`` (``ParametricBuffer`` + ``HerdingSelectionStrategy``
    on the model's features) or any condense registry method (a :class:`CondensedBuffer`).
    In buffer-only mode the model trains ``buffer_epochs`` epochs on the buffer at each experience.
    ``model`` is Avalanche's ``simple-mlp`` (``hidden_size`` wide) or a condense model
    (``convnet``, ``mlp``, ``resnet``; ``model_kwargs`` go to it)."""

    buffer: str = "dm"
    mode: str = "replay"
    memory: int = 100
    strategy: str = "naive"
    epochs: int = 1
    buffer_epochs: int = 30
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 128
    buffer_share: float = 0.5
    buffer_loss_weight: float = 1.0
    augment: bool = False
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    resize_method: str = "herding"
    resize_kwargs: dict[str, Any] = field(default_factory=dict)
    total_classes: int | None = None
    hidden_size: int = 512
    model: str = "simple-mlp"
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """A short name for tables."""
        if self.buffer == "none":
            return f"{self.strategy}"
        if self.buffer == "avalanche-random":
            return "Avalanche GDumb" if self.mode == "buffer-only" else "Avalanche ReplayPlugin (random)"
        if self.buffer == "avalanche-herding":
            return "Avalanche herding replay"
        parts = [f"condensed {self.buffer}", self.mode]
        if self.mode == "replay" and self.buffer_share != 0.5:
            parts.append(f"share {self.buffer_share:g}")
        if self.mode == "replay" and self.buffer_loss_weight != 1.0:
            parts.append(f"w {self.buffer_loss_weight:g}")
        if self.augment:
            parts.append("DSA")
        if self.resize_method != "herding":
            parts.append(f"resize {self.resize_method}")
        if self.total_classes:
            parts.append("fixed share")
        return ", ".join(parts)


@dataclass
class CLResult:
    """Avalanche's stream accuracy after each experience, the final one, forgetting and timings."""

    config: dict[str, Any]
    seed: int
    accuracy_after_each: list[float]
    final_accuracy: float
    forgetting: float
    seconds: float
    seconds_per_experience: float
    condense_seconds: list[float]
    buffer_size: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_plugins(cfg: CLConfig, seed: int, device: str, show_progress: bool, cache: dict[str, Any] | None = None) -> list[Any]:
    """The replay plugin(s) ``cfg`` asks for (empty for no replay)."""
    from avalanche.training.plugins import GDumbPlugin, ReplayPlugin

    from condense.strategies.buffer import CondensedBuffer
    from condense.strategies.plugin import CondensedReplayPlugin

    if cfg.buffer == "none":
        return []
    if cfg.buffer == "avalanche-random":
        return [GDumbPlugin(mem_size=cfg.memory)] if cfg.mode == "buffer-only" else [ReplayPlugin(mem_size=cfg.memory)]
    if cfg.buffer == "avalanche-herding":
        if cfg.mode == "buffer-only":
            raise CondenseError("avalanche-herding has no buffer-only mode (use avalanche-random for GDumb)")
        return ["herding"]  # needs the model: built in run_cl
    buffer = CondensedBuffer(
        cfg.memory, method=cfg.buffer, method_kwargs=cfg.method_kwargs, resize_method=cfg.resize_method,
        resize_kwargs=cfg.resize_kwargs, total_classes=cfg.total_classes, seed=seed, device=device,
        show_progress=show_progress, cache=cache,
    )
    return [CondensedReplayPlugin(buffer, mode=cfg.mode, buffer_share=cfg.buffer_share,
                                  buffer_loss_weight=cfg.buffer_loss_weight, augment=cfg.augment, seed=seed)]


def run_cl(
    benchmark: Any,
    cfg: CLConfig,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = False,
    cache: dict[str, Any] | None = None,
) -> CLResult:
    """Train on ``benchmark.train_stream`` one experience at a time; evaluate the
    whole test stream after each (Avalanche's accuracy and forgetting metrics).
    ``cache`` is passed to :class:`CondensedBuffer` (see there)."""
    import warnings

    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
    from avalanche.models import MTSimpleMLP, SimpleMLP, as_multitask
    from avalanche.training.determinism.rng_manager import RNGManager
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer
    from avalanche.training.supervised import EWC, LwF, Naive

    if cfg.strategy not in STRATEGIES:
        raise CondenseError(f"unknown strategy '{cfg.strategy}': choose one of {STRATEGIES}")
    if cfg.mode not in ("replay", "buffer-only"):
        raise CondenseError(f"mode must be 'replay' or 'buffer-only', got '{cfg.mode}'")
    # Avalanche 0.6's own plugins call its deprecated ``update``; say it once, not per experience.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="avalanche")
    RNGManager.set_random_seeds(seed)
    torch.manual_seed(seed)
    first = benchmark.train_stream[0].dataset[0][0]
    multi_head = is_task_incremental(benchmark)
    if cfg.model == "simple-mlp":
        if multi_head:  # one output head per task, grown by Avalanche as tasks arrive
            model = MTSimpleMLP(input_size=int(first.numel()), hidden_size=cfg.hidden_size)
        else:
            model = SimpleMLP(num_classes=benchmark.n_classes, input_size=int(first.numel()), hidden_size=cfg.hidden_size)
    else:
        from condense.models import build_model

        model = build_model(cfg.model, tuple(first.shape), benchmark.n_classes, **cfg.model_kwargs)
        if cfg.buffer == "avalanche-herding":
            raise CondenseError("avalanche-herding reads the 'features' layer of Avalanche's SimpleMLP; use model='simple-mlp'")
        if multi_head:  # condense's models name their last layer `classifier`
            model = as_multitask(model, "classifier")
    plugins = build_plugins(cfg, seed, device, show_progress, cache)
    if plugins == ["herding"]:
        storage = ParametricBuffer(max_size=cfg.memory, groupby="class",
                                   selection_strategy=HerdingSelectionStrategy(model, "features"))
        plugins = [ReplayPlugin(mem_size=cfg.memory, storage_policy=storage)]
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), forgetting_metrics(stream=True), loggers=[])
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    epochs = cfg.buffer_epochs if cfg.mode == "buffer-only" else cfg.epochs
    common = dict(train_mb_size=cfg.batch_size, train_epochs=epochs, eval_mb_size=1024, device=device,
                  plugins=plugins, evaluator=evaluator)
    # Avalanche 0.6's EWC and LwF take the criterion as a required keyword (Naive defaults to cross-entropy).
    criterion = torch.nn.CrossEntropyLoss()
    if cfg.strategy == "naive":
        strategy = Naive(model=model, optimizer=optimizer, criterion=criterion, **common)
    elif cfg.strategy == "ewc":
        strategy = EWC(model=model, optimizer=optimizer, criterion=criterion, ewc_lambda=1000.0, **common)
    else:
        strategy = LwF(model=model, optimizer=optimizer, criterion=criterion, alpha=1.0, temperature=2.0, **common)
    accs: list[float] = []
    forgetting = 0.0
    start = time.perf_counter()
    for exp in benchmark.train_stream:
        strategy.train(exp, num_workers=0)
        metrics = strategy.eval(benchmark.test_stream, num_workers=0)
        accs.append(_metric(metrics, "Top1_Acc_Stream/eval_phase/test_stream"))
        forgetting = _metric(metrics, "StreamForgetting/eval_phase/test_stream", default=0.0)
    seconds = time.perf_counter() - start
    condense_seconds: list[float] = []
    buffer_size = 0
    for p in plugins:
        policy = getattr(p, "storage_policy", None)
        if policy is not None:
            # stored images (a CondensedBuffer's formation rows expand at replay: its dataset is larger)
            buffer_size = len(policy) if hasattr(type(policy), "__len__") else len(policy.buffer)
            condense_seconds = [h["seconds"] for h in getattr(policy, "history", []) if not h.get("cached")]
    return CLResult(asdict(cfg), seed, accs, accs[-1], forgetting, round(seconds, 2),
                    round(seconds / len(accs), 2), condense_seconds, buffer_size)


def is_task_incremental(benchmark: Any) -> bool:
    """True when the training experiences carry more than one task label (one head per task is then right)."""
    labels = {int(t) for exp in benchmark.train_stream for t in getattr(exp, "task_labels", [0])}
    return len(labels) > 1


def _metric(metrics: dict[str, Any], prefix: str, default: float | None = None) -> float:
    for key, value in metrics.items():
        if key.startswith(prefix):
            return float(value)
    if default is not None:
        return default
    raise KeyError(f"Avalanche did not report {prefix}; got {sorted(metrics)}")
