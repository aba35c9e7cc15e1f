"""The federated benchmark keeps runs of different grid knobs apart (file names, tables)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def fl(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("fl")
    monkeypatch.setattr(module, "RUNS", tmp_path)
    return module


def _save(fl, args, strategy: str, seed: int) -> None:
    config = {"local_batch": args.local_batch, "local_epochs": args.local_epochs, "steps": args.steps, "rounds": 20, "seed": seed}
    path = fl.run_path(args, strategy, 0.1, seed)
    path.write_text(json.dumps({"strategy": strategy, "config": config, "seed": seed}))


def test_default_knobs_keep_the_old_run_names(fl):
    args = fl.parse_args(["--dataset", "mnist"])
    assert fl.run_path(args, "fedavg", 0.1, 2).name == "mnist_a0.1_w16_fedavg_s2.json"
    assert fl.run_path(args, "oneshot", 0.5, 0).name == "mnist_a0.5_w16_oneshot_s0.json"


def test_a_changed_knob_makes_its_own_setting(fl):
    default = fl.parse_args(["--dataset", "mnist"])
    faster = fl.parse_args(["--dataset", "mnist", "--local-batch", "64", "--steps", "100"])
    assert fl.run_path(faster, "fedavg", 0.1, 0).name == "mnist_a0.1_w16_lb64_st100_fedavg_s0.json"
    assert fl.run_path(faster, "fedavg", 0.1, 0) != fl.run_path(default, "fedavg", 0.1, 0)

    _save(fl, default, "fedavg", 0)
    _save(fl, faster, "fedavg", 0)
    _save(fl, faster, "hybrid", 1)
    # the default setting's file pattern also matches the longer names: the runs' configs decide
    old = fl.load_runs("mnist", 0.1, 16, fl.grid_knobs(default))
    new = fl.load_runs("mnist", 0.1, 16, fl.grid_knobs(faster))
    assert [(r["strategy"], r["config"]["local_batch"]) for r in old] == [("fedavg", 32)]
    assert sorted((r["strategy"], r["config"]["local_batch"], r["config"]["steps"]) for r in new) == [
        ("fedavg", 64, 100), ("hybrid", 64, 100)]


def test_the_local_batch_reaches_the_clients_config(fl, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_simulate(cfg):
        seen["local_batch"] = cfg.local_batch
        raise Stop

    import condense.federated as federated

    monkeypatch.setattr(federated, "simulate", fake_simulate)
    args = fl.parse_args(["--dataset", "digits", "--local-batch", "64"])
    with pytest.raises(Stop):
        fl.run_one(args, "fedavg", 0.5, 0)
    assert seen == {"local_batch": 64}
