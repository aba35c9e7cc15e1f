"""One-shot and hybrid runs on digits in Flower's Simulation Engine, with misbehaving clients.

Both runs share one ``run_simulation`` (Ray starts once). Of 4 clients,
partition 2 raises and partition 3 sends a set full of NaN.
"""

from __future__ import annotations

import pytest
import torch

from condense.federated import FLConfig, FLReport, simulate_many
from condense.federated.client import build_client_app

pytestmark = pytest.mark.slow

# Ray runs ClientApps at nice 15: beside other CPU work they can take minutes, so the
# timeout is generous (an idle machine answers in seconds; "missing" would fail the test).
BASE = dict(data="digits", num_clients=4, partitioner="dirichlet", alpha=1.0, ipc=5, width=16,
            method_kwargs={"steps": 10, "batch_real": 32, "model_kwargs": {"width": 16}},
            server_epochs=100, server_batch=32, encoding="float16", seed=0, timeout=1800, min_clients=1)


@pytest.fixture(scope="module")
def reports() -> dict[str, FLReport]:
    torch.set_num_threads(1)
    configs = [
        FLConfig(strategy="oneshot", **BASE),
        FLConfig(strategy="hybrid", rounds=2, hybrid_epochs=5, local_epochs=3, local_lr=0.05, **BASE),
    ]
    out = simulate_many(configs, client_app=build_client_app({2: "raise", 3: "nan"}, defaults=configs[0].client_settings()))
    return {r.strategy: r for r in out}


def test_oneshot_survives_a_raising_and_a_garbage_client(reports) -> None:
    report = reports["oneshot"]
    kinds = sorted((i.kind, i.round) for i in report.incidents)
    assert kinds == [("error", 1), ("rejected", 1)]
    rejected = next(i for i in report.incidents if i.kind == "rejected")
    assert "NaN" in rejected.reason
    assert "injected failure" in next(i for i in report.incidents if i.kind == "error").reason
    assert report.rounds == 1 and report.synthetic_images > 0
    # Two good clients' sets must train a model far above the untrained one.
    assert report.accuracy > report.history[0].accuracy + 0.25
    assert 0 < report.bytes_up < 60_000 and report.bytes_down > 0


def test_hybrid_runs_fedavg_rounds_plus_synthetic_fine_tuning(reports) -> None:
    report = reports["hybrid"]
    assert [r.round for r in report.history] == [0, 1, 2]
    assert report.synthetic_images > 0
    # the raising client fails both rounds; the NaN set is dropped in round 1, its weights are used
    assert sorted((i.kind, i.round) for i in report.incidents) == [("error", 1), ("error", 2), ("rejected", 1)]
    up = [r.bytes_up for r in report.history]
    assert up[0] == 0 < up[1] < up[2]
    assert up[1] - up[0] > up[2] - up[1]  # round 1 also carried the sets up
    assert report.accuracy > report.history[0].accuracy + 0.2
