"""Server strategies that use synthetic sets, as Flower :class:`Strategy` subclasses.

* :class:`OneShot`: one round; the server trains a fresh model on the union of
  the clients' synthetic sets.
* :class:`MultiRound`: every round clients re-condense (FedDM-style, around
  the latest global weights); the server keeps every valid set and trains the
  global model further on all of them.
* :class:`CheckedFedAvg`: Flower's :class:`FedAvg` with every model reply
  checked (record layout, weight keys, dtypes, shapes, finite values, a
  positive example count) before it is averaged; the ``fedavg`` strategy.
* :class:`Hybrid`: :class:`CheckedFedAvg` rounds; in round 1 clients also
  send a synthetic set, and after every averaging the server fine-tunes the
  global model on the union of those sets (against non-IID client drift).

A round that fails on the server keeps the previous model and the previous
sets: new sets are kept only once the step that uses them has succeeded.

The server-side evaluation on the held-out split is Flower's ``evaluate_fn``
(see :mod:`.server`); client-side evaluation is not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from logging import INFO, WARNING

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy
from torch import nn

from condense.errors import CondenseError
from condense.normalization import Normalization
from condense.synthetic_set import SyntheticSet
from condense.federated.config import FLConfig
from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY
from condense.federated.report import FLReport, Incident
from condense.federated.server_training import train_on_sets
from condense.federated.validation import PayloadLimits, PayloadRejected, validate_reply

DISTILL = f"{MessageType.TRAIN}.distill"


# SuperNodes register within seconds of starting; a longer wait means they are not coming.
NODE_WAIT_SECONDS = 60.0


def wait_for_nodes(grid: Grid, want: int, need: int, timeout: float, poll: float = 0.5,
                   node_wait: float = NODE_WAIT_SECONDS) -> list[int]:
    """Connected node ids once ``want`` are connected, or after the wait if at least ``need`` are.

    ``grid.get_node_ids()`` may be empty right after start (nodes still registering).
    The wait is ``min(timeout, node_wait)`` seconds (the run's reply timeout can be an hour;
    nodes that have not joined after a minute will not), and every 10 s the log says how
    many have joined. Too few raises a :class:`TimeoutError` that names both numbers.
    """
    wait = min(timeout, node_wait)
    start = time.monotonic()
    deadline, next_note = start + wait, start + 10.0
    while True:
        nodes = sorted(grid.get_node_ids())
        now = time.monotonic()
        if len(nodes) >= want or (now >= deadline and len(nodes) >= need):
            if len(nodes) < want:
                log(WARNING, "%d of %d expected SuperNodes joined within %.0f s; going on with them", len(nodes), want, wait)
            return nodes
        if now >= deadline:
            raise TimeoutError(
                f"only {len(nodes)} of the {want} expected SuperNodes joined within {wait:.0f} s "
                f"(at least {need} needed): start more SuperNodes, or run with num-clients={len(nodes)} / a lower min-clients"
            )
        if now >= next_note:
            log(INFO, "waiting for SuperNodes: %d of %d joined", len(nodes), want)
            next_note += 10.0
        time.sleep(poll)


class SetCollector:
    """Validates synthetic-set replies and records what was dropped and why."""

    def __init__(self, limits: PayloadLimits, normalization: Normalization | None, report: FLReport) -> None:
        self.limits = limits
        self.normalization = normalization
        self.report = report

    def note(self, server_round: int, node: int, kind: str, reason: str) -> None:
        reason = _short(reason)
        self.report.incidents.append(Incident(server_round, node, kind, reason))
        log(WARNING, "round %d: reply of node %d not used (%s): %s", server_round, node, kind, reason)

    def missing(self, server_round: int, sent: Iterable[int], replies: list[Message]) -> None:
        got = {m.metadata.src_node_id for m in replies}
        for node in sorted(set(sent) - got):
            self.note(server_round, node, "missing", "no reply before the timeout")

    def collect(self, server_round: int, replies: list[Message]) -> list[SyntheticSet]:
        """The valid sets among ``replies``; errors, empties and rejects are noted."""
        sets = []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                self.note(server_round, node, "error", str(msg.error.reason))
                continue
            content = msg.content
            metrics = content.metric_records.get("metrics")
            if metrics is not None:
                self.report.client_metrics[node] = scalar_metrics(metrics)
            if metrics is not None and metrics.get("empty") == 1 and ARRAYS_KEY not in content.array_records:
                self.note(server_round, node, "empty", "client had no class with enough samples to condense")
                continue
            try:
                decoded = validate_reply(content, self.limits)
                syn = decoded.to_synthetic_set(self.normalization)
            except (PayloadRejected, CondenseError) as exc:
                self.note(server_round, node, "rejected", str(exc))
                continue
            except Exception as exc:  # a reply the checks did not foresee must still not stop the run
                self.note(server_round, node, "rejected", f"{type(exc).__name__}: {exc}")
                continue
            syn.meta["node_id"] = int(node)
            syn.meta["round"] = server_round
            sets.append(syn)
        return sets


def scalar_metrics(metrics: MetricRecord) -> dict[str, float]:
    """The finite scalar entries of a client's metrics (a MetricRecord may also hold lists)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


def _short(reason: str, limit: int = 300) -> str:
    """The last meaningful line of a (remote traceback) reason, capped."""
    lines = [ln.strip() for ln in reason.replace("\\n", "\n").splitlines() if ln.strip() and not ln.strip().startswith("^")]
    text = lines[-1] if lines else reason
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            text = line
            break
    return text[:limit]


class _SyntheticStrategy(Strategy):
    """Shared parts of :class:`OneShot` and :class:`MultiRound`."""

    send_weights = False

    def __init__(
        self,
        cfg: FLConfig,
        build_model: Callable[[], nn.Module],
        collector: SetCollector,
        client_config: Callable[[int], ConfigRecord],
    ) -> None:
        self.cfg = cfg
        self.build_model = build_model
        self.collector = collector
        self.client_config = client_config
        self.sets: list[SyntheticSet] = []
        self._sent: list[int] = []
        self._arrays: ArrayRecord | None = None

    def summary(self) -> None:
        log(INFO, "\t├──> %s: method %s, ipc %d, encoding %s", type(self).__name__, self.cfg.method, self.cfg.ipc, self.cfg.encoding)
        log(INFO, "\t└──> min clients %d, timeout %.0f s", self.cfg.min_clients, self.cfg.timeout)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        nodes = sorted(grid.get_node_ids())
        self._sent, self._arrays = nodes, arrays
        messages = []
        for node in nodes:
            content = RecordDict({"config": self.client_config(server_round)})
            if self.send_weights:
                content["arrays"] = arrays
            messages.append(Message(content=content, dst_node_id=node, message_type=DISTILL))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.collector.missing(server_round, self._sent, replies)
        new_sets = self.collector.collect(server_round, replies)
        metrics = MetricRecord({"valid-sets": len(new_sets), "replies": len(replies)})
        if len(new_sets) < self.cfg.min_clients:
            log(WARNING, "round %d: %d valid set(s), fewer than min_clients=%d: model unchanged", server_round, len(new_sets), self.cfg.min_clients)
            return None, metrics
        sets = [*self.sets, *new_sets]
        model = self.start_model()
        try:
            train_on_sets(
                model, sets, self.cfg.server_epochs, self.cfg.server_lr, self.cfg.seed + server_round, self.cfg.device,
                batch_size=self.cfg.server_batch,
            )
        except CondenseError as exc:  # keep the previous model and sets rather than stop the run
            log(WARNING, "round %d: server training failed (%s): model and sets unchanged", server_round, exc)
            return None, metrics
        self.sets = sets
        return ArrayRecord(model.state_dict()), metrics

    def start_model(self) -> nn.Module:
        return self.build_model()

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return []  # evaluation is server-side, on the held-out split

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None


class OneShot(_SyntheticStrategy):
    """One round of ``train.distill``; a fresh model trained on the union of the sets."""


class MultiRound(_SyntheticStrategy):
    """``train.distill`` with the global weights every round; the model keeps training on all sets so far."""

    send_weights = True

    def start_model(self) -> nn.Module:
        model = self.build_model()
        if self._arrays is not None:
            model.load_state_dict(self._arrays.to_torch_state_dict())
        return model


class CheckedFedAvg(FedAvg):
    """Flower's :class:`FedAvg`, averaging only the replies that pass :func:`model_reply_problem`.

    A rejected reply is recorded as an incident and the round goes on with the
    others; a round with fewer than ``min_clients`` usable replies keeps the
    previous model. Each usable reply's metrics are cut down to the finite
    scalars every usable reply has (FedAvg's metric averaging would raise on
    replies whose metric keys differ).
    """

    def __init__(self, cfg: FLConfig, build_model: Callable[[], nn.Module], collector: SetCollector, **fedavg_kwargs) -> None:
        super().__init__(**fedavg_kwargs)
        self.cfg = cfg
        self.build_model = build_model
        self.collector = collector
        self._sent: list[int] = []
        self._reference = build_model().state_dict()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._sent = [m.metadata.dst_node_id for m in messages]
        return messages

    def take_extras(self, server_round: int, msg: Message) -> list[SyntheticSet]:
        """Remove (and return what is usable of) records that are not model weights; none in plain FedAvg."""
        return []

    def keep_extras(self, server_round: int, extras: list[SyntheticSet]) -> None:
        """Called with the extras of the usable replies once their round has been averaged."""

    def after_average(self, server_round: int, arrays: ArrayRecord, metrics: MetricRecord | None) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return arrays, metrics

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.collector.missing(server_round, self._sent, replies)
        usable, extras = [], []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                self.collector.note(server_round, node, "error", str(msg.error.reason))
                continue
            extra = self.take_extras(server_round, msg)
            problem = model_reply_problem(msg.content, self.weighted_by_key, self._reference)
            if problem:
                self.collector.note(server_round, node, "empty" if problem == NO_EXAMPLES else "rejected", problem)
                continue
            usable.append(msg)
            extras.extend(extra)
        if len(usable) < self.cfg.min_clients:
            log(WARNING, "round %d: %d usable replies, fewer than min_clients=%d: model unchanged", server_round, len(usable), self.cfg.min_clients)
            return None, None
        _common_scalar_metrics(usable)
        arrays, metrics = super().aggregate_train(server_round, usable)
        if arrays is None:
            return None, metrics
        self.keep_extras(server_round, extras)
        return self.after_average(server_round, arrays, metrics)


class Hybrid(CheckedFedAvg):
    """FedAvg, plus server-side fine-tuning on synthetic sets sent once (round 1) with the weights."""

    def __init__(self, cfg: FLConfig, build_model: Callable[[], nn.Module], collector: SetCollector, **fedavg_kwargs) -> None:
        super().__init__(cfg, build_model, collector, **fedavg_kwargs)
        self.sets: list[SyntheticSet] = []

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        config["distill"] = server_round == 1
        return super().configure_train(server_round, arrays, config, grid)

    def take_extras(self, server_round: int, msg: Message) -> list[SyntheticSet]:
        sets = self.collector.collect(server_round, [msg]) if server_round == 1 else []
        if ARRAYS_KEY in msg.content.array_records:
            del msg.content[ARRAYS_KEY]
        if CONFIG_KEY in msg.content.config_records:
            del msg.content[CONFIG_KEY]
        return sets

    def keep_extras(self, server_round: int, extras: list[SyntheticSet]) -> None:
        self.sets.extend(extras)  # only sets of clients whose weights were averaged

    def after_average(self, server_round: int, arrays: ArrayRecord, metrics: MetricRecord | None) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if not self.sets or self.cfg.hybrid_epochs <= 0:
            return arrays, metrics
        model = self.build_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        try:
            train_on_sets(
                model, self.sets, self.cfg.hybrid_epochs, self.cfg.server_lr, self.cfg.seed + server_round, self.cfg.device,
                decay_at_half=False, batch_size=self.cfg.server_batch,
            )
        except CondenseError as exc:  # the averaged model still stands
            log(WARNING, "round %d: fine-tuning on the sets failed (%s): averaged model kept", server_round, exc)
            return arrays, metrics
        return ArrayRecord(model.state_dict()), metrics


NO_EXAMPLES = "the client trained on no examples"


def model_reply_problem(content: RecordDict, weight_key: str, reference: dict[str, torch.Tensor]) -> str | None:
    """Why a model reply cannot be averaged, or None."""
    return _fedavg_problem(content, weight_key) or check_weights(content.array_records["arrays"], reference)


def _common_scalar_metrics(replies: list[Message]) -> None:
    """Cut every reply's MetricRecord down to the finite scalar keys all of them have."""
    kept = [scalar_metrics(next(iter(m.content.metric_records.values()))) for m in replies]
    common = set.intersection(*(set(k) for k in kept))
    for msg, values in zip(replies, kept):
        name = next(iter(msg.content.metric_records))
        msg.content[name] = MetricRecord({k: values[k] for k in sorted(common)})


def _fedavg_problem(content: RecordDict, weight_key: str) -> str | None:
    """Why a model reply cannot be averaged (FedAvg would raise and stop the run), or None."""
    if len(content.array_records) != 1 or "arrays" not in content.array_records:
        return f"expected one ArrayRecord 'arrays', got {sorted(content.array_records)}"
    if len(content.metric_records) != 1 or weight_key not in next(iter(content.metric_records.values())):
        return f"expected one MetricRecord with '{weight_key}'"
    count = next(iter(content.metric_records.values()))[weight_key]
    if isinstance(count, bool) or not isinstance(count, (int, float)) or not np.isfinite(count) or count < 0:
        return f"'{weight_key}' must be a finite number >= 0, got {count!r}"
    if count == 0:
        return NO_EXAMPLES
    return None


def check_weights(arrays: ArrayRecord, reference: dict[str, torch.Tensor]) -> str | None:
    """Why ``arrays`` does not fit the model's state dict (keys, dtypes, shapes, finite), or None."""
    if set(arrays.keys()) != set(reference):
        return "weights have different keys than the model"
    for key, ref in reference.items():
        arr = arrays[key]
        if tuple(arr.shape) != tuple(ref.shape):
            return f"weight '{key}' has shape {tuple(arr.shape)}, expected {tuple(ref.shape)}"
        try:
            values = arr.numpy()
        except Exception as exc:  # malformed bytes
            return f"weight '{key}' cannot be decoded ({type(exc).__name__})"
        expected = torch.empty(0, dtype=ref.dtype).numpy().dtype
        if values.dtype != expected:  # e.g. float64 beyond float32's range, or strings
            return f"weight '{key}' has dtype {values.dtype}, expected {expected}"
        if values.shape != tuple(ref.shape):  # the declared shape above may differ from the data
            return f"weight '{key}' decodes to shape {values.shape}, expected {tuple(ref.shape)}"
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return f"weight '{key}' holds NaN or infinite values"
    return None
