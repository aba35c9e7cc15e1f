"""Server strategies against hostile model replies and failed server steps (no Ray: replies are built by hand)."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from condense.data import load_dataset
from condense.errors import CondenseError
from condense.federated import strategies
from condense.federated.client import condense_local
from condense.federated.config import FLConfig
from condense.federated.local_training import build_global_model
from condense.federated.report import FLReport
from condense.federated.strategies import CheckedFedAvg, Hybrid, OneShot, SetCollector
from condense.federated.validation import PayloadLimits

SHAPE, K = (1, 8, 8), 10
CFG = FLConfig(width=4, depth=1, min_clients=1, hybrid_epochs=0, ipc=2, method="random")


class _Meta:
    def __init__(self, node: int) -> None:
        self.src_node_id = node


class _Reply:
    """A reply as the strategies read it: metadata.src_node_id, content, has_error()."""

    def __init__(self, node: int, content: RecordDict) -> None:
        self.metadata = _Meta(node)
        self.content = content
        self.error = None

    def has_error(self) -> bool:
        return False


def _build() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_global_model(CFG.model, CFG.global_model_kwargs(), SHAPE, K)


def _weights(offset: float) -> dict[str, torch.Tensor]:
    return {k: v + offset for k, v in _build().state_dict().items()}


def _model_reply(node: int, weights: dict, examples: object = 10, **extra_metrics) -> _Reply:
    arrays = ArrayRecord({k: v if isinstance(v, Array) else Array(v.numpy() if torch.is_tensor(v) else v)
                          for k, v in weights.items()})
    return _Reply(node, RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": examples, **extra_metrics})}))


def _strategy(cls, report: FLReport):
    collector = SetCollector(PayloadLimits.for_run(SHAPE, K, CFG.ipc), None, report)
    return cls(CFG, _build, collector, fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)


def test_fedavg_averages_only_replies_that_fit_the_model() -> None:
    report = FLReport("fedavg")
    strategy = _strategy(CheckedFedAvg, report)
    first = next(iter(_weights(0.0)))
    as_float64 = {k: v.double() for k, v in _weights(1e30).items()}
    declared_wrong = _weights(0.0)
    squeezed = Array(np.zeros(1, np.float32))  # data of shape (1,) declared as the reference's shape
    squeezed.shape = tuple(declared_wrong[first].shape)
    declared_wrong[first] = squeezed
    replies = [
        _model_reply(1, _weights(1.0), 10, **{"train-seconds": 1.0}),
        _model_reply(2, _weights(3.0), 30, extra=5.0),  # a metric key the others lack: FedAvg would raise
        _model_reply(3, as_float64),
        _model_reply(4, declared_wrong),
        _model_reply(5, _weights(0.0), 0),
        _model_reply(6, _weights(0.0), float("nan")),
        _model_reply(7, {k: np.full(tuple(v.shape), "a") for k, v in _weights(0.0).items()}),
    ]
    strategy._sent = [1, 2, 3, 4, 5, 6, 7]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is not None
    expected = {k: (10 * (v + 1.0) + 30 * (v + 3.0)) / 40 for k, v in _build().state_dict().items()}
    for key, value in arrays.to_torch_state_dict().items():
        torch.testing.assert_close(value, expected[key])
    kinds = {(i.node_id, i.kind) for i in report.incidents}
    assert kinds == {(3, "rejected"), (4, "rejected"), (5, "empty"), (6, "rejected"), (7, "rejected")}
    reasons = {i.node_id: i.reason for i in report.incidents}
    assert "dtype" in reasons[3] and "shape" in reasons[4] and "num-examples" in reasons[6] and "dtype" in reasons[7]


def test_a_failed_server_training_keeps_the_previous_sets(monkeypatch) -> None:
    train, _ = load_dataset("digits")
    content, metrics = condense_local(train, CFG.round_config(1, K), seed=0)
    report = FLReport("oneshot")
    strategy = _strategy(lambda cfg, build, collector, **_: OneShot(cfg, build, collector, lambda r: ConfigRecord({})), report)

    def failing(*args, **kwargs):
        raise CondenseError("training failed")

    monkeypatch.setattr(strategies, "train_on_sets", failing)
    strategy._sent = [1]
    arrays, _ = strategy.aggregate_train(1, [_Reply(1, content)])
    assert arrays is None  # the previous model stands
    assert strategy.sets == []  # the set of the failed round was not kept

    monkeypatch.setattr(strategies, "train_on_sets", lambda *a, **k: None)
    arrays, _ = strategy.aggregate_train(2, [_Reply(1, content)])
    assert arrays is not None and len(strategy.sets) == 1


def test_hybrid_keeps_sets_only_from_clients_whose_weights_were_averaged() -> None:
    train, _ = load_dataset("digits")
    report = FLReport("hybrid")
    strategy = _strategy(Hybrid, report)
    replies = []
    for node, weights in ((1, _weights(0.5)), (2, {k: v.double() for k, v in _weights(0.5).items()})):
        content, metrics = condense_local(train, CFG.round_config(1, K), seed=node)
        content["arrays"] = ArrayRecord({k: Array(v.numpy()) for k, v in weights.items()})
        content["metrics"] = MetricRecord({**metrics, "num-examples": 10})
        replies.append(_Reply(node, content))
    strategy._sent = [1, 2]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    assert [s.meta["node_id"] for s in strategy.sets] == [1]
    assert {(i.node_id, i.kind) for i in report.incidents} == {(2, "rejected")}


def test_client_metrics_keep_only_finite_scalars() -> None:
    metrics = MetricRecord({"num-examples": 3, "seconds": float("inf"), "odd": [1.0, 2.0]})
    assert strategies.scalar_metrics(metrics) == {"num-examples": 3.0}
