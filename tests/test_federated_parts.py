"""Partitions, client-side condensation edge cases, byte counting, FedDM sampling, config checks (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from condense.data import TensorData, load_dataset
from condense.federated.accounting import CountingGrid, record_dict_bytes
from condense.federated.client import condense_local
from condense.errors import CondenseError
from condense.federated.config import FLConfig, InvalidFLConfigError
from condense.federated.global_sampler import GlobalModelSampler, around_global_model
from condense.federated.local_training import build_global_model
from condense.federated.partition import partition_indices
from condense.federated.validation import PayloadLimits, validate_reply
from condense.api import make_condenser
from condense.normalization import Normalization


@pytest.fixture(scope="module")
def digits() -> tuple[TensorData, TensorData]:
    return load_dataset("digits")


def test_partitions_are_seeded_disjoint_and_complete() -> None:
    labels = np.repeat(np.arange(10), 50)
    for kind in ("iid", "dirichlet"):
        a = partition_indices(labels, 5, kind, alpha=0.1, seed=3)
        b = partition_indices(labels, 5, kind, alpha=0.1, seed=3)
        c = partition_indices(labels, 5, kind, alpha=0.1, seed=4)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))
        everything = np.concatenate(a)
        assert len(everything) == len(labels) and len(np.unique(everything)) == len(labels)
        assert min(len(p) for p in a) >= 10


def test_dirichlet_small_alpha_is_skewed_iid_is_not() -> None:
    labels = np.repeat(np.arange(10), 100)

    def classes_per_client(parts: list[np.ndarray]) -> float:
        return float(np.mean([np.sum(np.bincount(labels[p], minlength=10) >= 5) for p in parts]))

    assert classes_per_client(partition_indices(labels, 5, "dirichlet", 0.1, 0)) < classes_per_client(partition_indices(labels, 5, "iid", seed=0))


def test_client_without_data_or_enough_samples_sends_an_empty_reply(digits) -> None:
    cfg = FLConfig(ipc=5, method_kwargs={"steps": 2}).round_config(1, 10)
    content, metrics = condense_local(None, cfg, seed=0)
    assert metrics["empty"] == 1 and len(content.array_records) == 0
    train, _ = digits
    few = train.subset(torch.nonzero(train.y == 3).flatten()[:4])  # one class, 4 < ipc samples
    content, metrics = condense_local(few, cfg, seed=0)
    assert metrics["empty"] == 1 and metrics["classes-skipped"] == 1


def test_single_class_client_sends_a_valid_one_class_set(digits) -> None:
    train, _ = digits
    one = train.subset(torch.nonzero(train.y == 7).flatten())
    cfg = FLConfig(ipc=3, method_kwargs={"steps": 3, "batch_real": 16, "model_kwargs": {"width": 8}}, encoding="uint8")
    content, metrics = condense_local(one, cfg.round_config(1, 10), seed=0)
    assert metrics["empty"] == 0 and metrics["classes-condensed"] == 1
    decoded = validate_reply(content, PayloadLimits.for_run((1, 8, 8), 10, 3))
    assert decoded.labels.tolist() == [7, 7, 7]


def test_small_classes_are_skipped_not_condensed(digits) -> None:
    train, _ = digits
    idx = torch.cat([torch.nonzero(train.y == 1).flatten()[:30], torch.nonzero(train.y == 2).flatten()[:2]])
    content, metrics = condense_local(train.subset(idx), FLConfig(ipc=4, method="random").round_config(1, 10), seed=0)
    decoded = validate_reply(content, PayloadLimits.for_run((1, 8, 8), 10, 4))
    assert set(decoded.labels.tolist()) == {1} and metrics["classes-skipped"] == 1


class _Msg:
    """Just what CountingGrid reads of a Message (real ones need a running Flower app)."""

    def __init__(self, content: RecordDict) -> None:
        self.content = content

    def has_content(self) -> bool:
        return True


class _FakeGrid:
    """Answers every message with a fixed reply content."""

    def __init__(self, reply_content: RecordDict) -> None:
        self.reply_content = reply_content

    def get_node_ids(self) -> list[int]:
        return [1, 2]

    def send_and_receive(self, messages, *, timeout=None):  # noqa: ANN001
        return [_Msg(self.reply_content) for _ in messages]


def test_counting_grid_counts_every_record_sent_and_received() -> None:
    down = RecordDict({"arrays": ArrayRecord([np.zeros(1000, np.float32)]), "config": ConfigRecord({"a": 1})})
    up = RecordDict({"config": ConfigRecord({"b": "x" * 100})})
    grid = CountingGrid(_FakeGrid(up))
    replies = grid.send_and_receive([_Msg(down), _Msg(down)])
    assert len(replies) == 2
    assert grid.bytes_down == 2 * record_dict_bytes(down) and grid.bytes_down > 2 * 4000
    assert grid.bytes_up == 2 * record_dict_bytes(up) and grid.bytes_up >= 200
    assert grid.get_node_ids() == [1, 2]


def test_global_model_sampler_stays_near_the_received_weights() -> None:
    cfg = FLConfig(width=8)
    model = build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    sampler = GlobalModelSampler(build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10), state, 0.05, "cpu",
                                 torch.Generator().manual_seed(0))
    a = sampler.sample(0).state_dict()["classifier.weight"].clone()
    b = sampler.sample(1).state_dict()["classifier.weight"].clone()
    ref = state["classifier.weight"]
    assert not torch.equal(a, b)
    assert (a - ref).norm() < 0.2 * ref.norm() and (a - ref).norm() > 0
    x = torch.randn(2, 1, 8, 8)
    exact = GlobalModelSampler(build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10), state, 0.0, "cpu",
                               torch.Generator())
    model.eval()
    assert torch.allclose(exact.sample(0).eval()(x), model(x), atol=1e-5)


def test_around_global_model_condenses_with_the_global_network(digits) -> None:
    train, _ = digits
    cfg = FLConfig(width=8)
    model = build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10)
    dm = make_condenser("dm", ipc=2, steps=3, batch_real=16, model_kwargs={"width": 8}, show_progress=False)
    wrapped = around_global_model(dm, lambda: build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10),
                                  model.state_dict(), None, 0.01)
    assert type(wrapped).__name__ == "GlobalDistributionMatching" and wrapped.get_params() == dm.get_params()
    syn = wrapped.condense(train)
    assert len(syn) == 20 and syn.meta["method"] == "dm"
    coreset = make_condenser("herding", ipc=2, show_progress=False)
    assert around_global_model(coreset, lambda: model, model.state_dict(), None, 0.01) is coreset
    own_sampler = make_condenser("idm", ipc=2, show_progress=False)  # a queue of trained networks: kept
    assert around_global_model(own_sampler, lambda: model, model.state_dict(), None, 0.01) is own_sampler
    norm = Normalization((0.3,), (0.4,))
    server_space = around_global_model(dm, lambda: build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10),
                                       model.state_dict(), norm, 0.01)
    assert server_space.condense(train, normalization=norm).normalization == norm
    with pytest.raises(CondenseError, match="server's normalization"):
        server_space.condense(train)  # its own statistics: not the space the global model was trained in


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"strategy": "fedsgd"}, "strategy"),
        ({"alpha": 0.0}, "alpha"),
        ({"min_clients": 11}, "min_clients"),
        ({"encoding": "int4"}, "encoding"),
        ({"timeout": 0}, "timeout"),
        ({"rounds": 0}, "rounds"),
        ({"method": "dm", "method_kwargs": {"stepz": 3}}, "stepz"),
        ({"method": "dm", "method_kwargs": {"ipc": 3}}, "ipc"),
    ],
)
def test_bad_config_is_refused(bad: dict, fragment: str) -> None:
    with pytest.raises(InvalidFLConfigError, match=fragment):
        FLConfig(**bad).validate()


def test_config_round_trips_through_json_and_run_config() -> None:
    cfg = FLConfig(strategy="hybrid", rounds=3, alpha=0.5)
    assert FLConfig.from_json(cfg.to_json()) == cfg
    cfg.report_path = "x"
    assert FLConfig.from_run_config({"strategy": "hybrid", "rounds": 3, "alpha": 0.5, "root": "", "report-path": "x"}) == cfg
    assert FLConfig.from_run_config({"report-path": ""}).report_path is None
    assert FLConfig.from_run_config({"method-kwargs": '{"steps": 7}'}).method_kwargs == {"steps": 7}
    with pytest.raises(InvalidFLConfigError, match="method-kwargs"):
        FLConfig.from_run_config({"steps": 7})  # the old style points to the new one


class _Meta:
    def __init__(self, node: int) -> None:
        self.src_node_id = node


class _Reply:
    """A reply as SetCollector reads it."""

    def __init__(self, node: int, content: RecordDict | None = None, error: str | None = None) -> None:
        self.metadata = _Meta(node)
        self.content = content
        self.error = type("E", (), {"reason": error})() if error else None

    def has_error(self) -> bool:
        return self.error is not None


def test_collector_reports_missing_errors_empties_and_rejects(digits) -> None:
    from flwr.app import MetricRecord

    from condense.federated.report import FLReport
    from condense.federated.strategies import SetCollector

    train, _ = digits
    good, _ = condense_local(train, FLConfig(ipc=2, method="random").round_config(1, 10), seed=0)
    bad, _ = condense_local(train, FLConfig(ipc=2, method="random").round_config(1, 10), seed=1)
    bad.array_records["syn"]["labels"] = __import__("flwr.app", fromlist=["Array"]).Array(np.full(20, 99, np.uint8))
    empty = RecordDict({"metrics": MetricRecord({"empty": 1, "num-examples": 0})})
    report = FLReport("oneshot")
    collector = SetCollector(PayloadLimits.for_run((1, 8, 8), 10, 2), None, report)
    replies = [_Reply(1, good), _Reply(2, bad), _Reply(3, empty), _Reply(4, error="Traceback ...\nRuntimeError: boom")]
    collector.missing(1, [1, 2, 3, 4, 5], replies)
    sets = collector.collect(1, replies)
    assert len(sets) == 1 and sets[0].meta["node_id"] == 1
    got = {(i.node_id, i.kind) for i in report.incidents}
    assert got == {(2, "rejected"), (3, "empty"), (4, "error"), (5, "missing")}
    assert next(i.reason for i in report.incidents if i.kind == "error") == "RuntimeError: boom"


def test_cli_fl_prints_a_json_last_line(monkeypatch, capsys) -> None:
    import json

    import condense.federated.simulation as simulation
    from condense.cli import main
    from condense.federated.report import FLReport, RoundRecord

    seen = {}

    def fake_simulate(cfg, max_parallel=1, **kwargs):  # noqa: ANN001
        seen["cfg"] = cfg
        return FLReport(cfg.strategy, history=[RoundRecord(0, 0.1, 0, 0, 0.0), RoundRecord(1, 0.9, 500, 100, 2.0)], wall_seconds=2.0)

    monkeypatch.setattr(simulation, "simulate", fake_simulate)
    assert main(["fl", "--data", "digits", "--clients", "3", "--alpha", "0.5", "--strategy", "oneshot", "--ipc", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["accuracy"] == 0.9 and out["bytes_up"] == 500 and out["bytes_down"] == 100 and out["rounds"] == 1
    assert {"wall_seconds", "strategy"} <= set(out)
    assert seen["cfg"].num_clients == 3 and seen["cfg"].alpha == 0.5 and seen["cfg"].ipc == 2
    assert main(["fl", "--data", "digits", "--clients", "2", "--min-clients", "3"]) == 2  # refused with a message
