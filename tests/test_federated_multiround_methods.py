"""Multi-round (FedDM-style) federated condensation works for every registry method.

The fast test condenses around a global model in-process (what a multi-round
client does) and checks the server accepts the payload; the slow one is
`condense fl --data digits --clients 2 --strategy multiround --method M --steps 5
--rounds 1 --ipc 2` for every method in one Flower simulation: no incident and
better than the untrained model it started from.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("flwr")

from condense.data import load_dataset  # noqa: E402
from condense.federated.client import condense_local  # noqa: E402
from condense.federated.config import FLConfig  # noqa: E402
from condense.federated.local_training import build_global_model  # noqa: E402
from condense.federated.validation import PayloadLimits, validate_reply  # noqa: E402
from condense.registry import available_methods  # noqa: E402

METHODS = [m.name for m in available_methods()]
# `condense fl`'s own defaults for a client's method, at the command's --steps 5 (a method gets those it takes),
# and small expert settings for methods that train experts first.
SMALL = {"steps": 5, "batch_real": 16, "model_kwargs": {"width": 16}, "num_experts": 1, "expert_train_epochs": 2,
         "expert_epochs": 1, "max_start_epoch": 1, "syn_steps": 2}


def config(method: str, **over) -> FLConfig:  # noqa: ANN003
    taken = set(next(m for m in available_methods() if m.name == method).cls._param_names())
    kwargs = {k: v for k, v in SMALL.items() if k in taken}
    base = dict(data="digits", num_clients=2, strategy="multiround", rounds=1, ipc=2, method=method, method_kwargs=kwargs,
                width=16, server_epochs=60, server_batch=16, server_lr=0.05, min_clients=1, timeout=1800, seed=0)
    return FLConfig(**{**base, **over}).validate()


# MTT at its defaults diverges on digits (issue 20, problem 2, open): the divergence guard refuses its set
# instead of sending noise. Strict, so this fails as soon as MTT's defaults are fixed.
MTT_DIVERGES = pytest.mark.xfail(strict=True, reason="mtt's default lr_img diverges on digits; the guard refuses the set")


@pytest.mark.parametrize("method", [pytest.param(m, marks=MTT_DIVERGES) if m == "mtt" else m for m in METHODS])
def test_a_multiround_client_condenses_around_the_global_model(method: str, digits) -> None:
    train, _ = digits
    cfg = config(method)
    global_model = build_global_model(cfg.model, cfg.global_model_kwargs(), (1, 8, 8), 10)
    round_cfg = cfg.round_config(1, 10)
    round_cfg.normalization = {"mean": [0.3], "std": [0.4]}
    content, metrics = condense_local(train, round_cfg, seed=0, global_state=global_model.state_dict())
    assert metrics["empty"] == 0
    decoded = validate_reply(content, PayloadLimits.for_run((1, 8, 8), 10, 2))
    assert decoded.images.shape[0] == 20


@pytest.mark.slow
def test_the_multiround_command_works_for_every_method() -> None:
    from condense.federated import simulate_many

    torch.set_num_threads(1)
    reports = simulate_many([config(m) for m in METHODS])
    for method, report in zip(METHODS, reports):
        assert not report.incidents, (method, [(i.kind, i.reason) for i in report.incidents])
        start, end = report.history[0].accuracy, report.history[-1].accuracy
        assert end > 0.10 and end > start + 0.05, (method, start, end)
