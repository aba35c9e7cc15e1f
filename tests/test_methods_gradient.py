"""Gradient matching (DC, DSA): the distance, the trained-along sampler, the
meta-gradient, and accuracy against random selection on digits."""

from __future__ import annotations

import statistics

import pytest
import torch

from condense import load_dataset
from condense.api import condense, make_condenser
from condense.evaluation import evaluate
from condense.methods.base import StepBatch
from condense.methods.dc import GradientMatching, TrainedAlongSampler, default_loops, gradient_distance
from condense.models import build_model
from condense.registry import get_method

# Depth 2: on 8x8 digits a third block would instance-normalise 2x2 maps, which makes gradients degenerate.
NET = {"width": 16, "depth": 2}


def test_registered_with_the_right_augmentation() -> None:
    assert get_method("dc").family == get_method("dsa").family == "gradient matching"
    assert make_condenser("dc").dsa is False
    assert make_condenser("dsa").dsa is True
    assert make_condenser("dsa", ipc=10).loops() == (10, 50)


def test_official_loops_by_ipc() -> None:
    assert default_loops(1) == (1, 1)
    assert default_loops(10) == (10, 50)
    assert default_loops(50) == (50, 10)
    assert default_loops(12) == (10, 50)  # nearest listed IPC


def test_layerwise_distance() -> None:
    w = torch.randn(4, 3, 3, 3)
    bias = torch.randn(4)
    assert float(gradient_distance([w, bias], [w * 2.5, -bias])) == pytest.approx(0.0, abs=1e-5)  # scale-free, biases ignored
    assert float(gradient_distance([w], [-w])) == pytest.approx(8.0, abs=1e-4)  # 1 - cos = 2 for each of 4 units
    assert float(gradient_distance([w], [-w], "mse")) == pytest.approx(float((2 * w).pow(2).sum()), rel=1e-5)
    with pytest.raises(ValueError, match="unknown gradient distance"):
        gradient_distance([w], [w], "l7")


def test_objective_gradient_is_correct() -> None:
    """The per-class double-backward objective against finite differences (float64)."""
    torch.manual_seed(0)
    method = GradientMatching(ipc=1)
    net = build_model("convnet", (1, 8, 8), 3, width=4, depth=2).double()
    xr = torch.randn(9, 1, 8, 8, dtype=torch.float64)
    yr = torch.arange(3).repeat_interleave(3)
    syn = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    groups = torch.arange(3)

    def loss(s: torch.Tensor) -> torch.Tensor:
        stat = method.real_statistic(net, xr, yr, yr, 3)
        return method.match(net, stat, StepBatch(0, net, xr, yr, yr, s, groups, groups, 3), None)

    assert torch.autograd.gradcheck(loss, (syn,), eps=1e-6, atol=1e-4)


def test_trained_along_sampler_reinitialises_and_trains() -> None:
    torch.manual_seed(0)
    sampler = TrainedAlongSampler(
        lambda: build_model("convnet", (1, 8, 8), 3, **NET), "cpu", outer_loop=3, inner_loop=2, lr_net=0.1,
        batch_train=8, augment=None, generator=torch.Generator().manual_seed(0),
    )
    x, y = torch.randn(6, 1, 8, 8), torch.arange(3).repeat(2)
    first = [p.detach().clone() for p in sampler.sample(0).parameters()]
    sampler.train_along(0, x, y)
    trained = [p.detach().clone() for p in sampler.sample(1).parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, trained)), "the inner loop must train the network"
    sampler.train_along(1, x, y)
    sampler.sample(2)
    after_last = [p.detach().clone() for p in sampler.net.parameters()]
    fresh = [p.detach().clone() for p in sampler.sample(3).parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(after_last, fresh)), "step 3 must start a fresh network"
    assert all(p.grad is None for p in sampler.net.parameters())


def test_inner_loop_skipped_on_last_outer_step() -> None:
    torch.manual_seed(0)
    sampler = TrainedAlongSampler(
        lambda: build_model("convnet", (1, 8, 8), 3, **NET), "cpu", outer_loop=2, inner_loop=3, lr_net=0.1,
        batch_train=8, augment=None, generator=torch.Generator().manual_seed(0),
    )
    net = sampler.sample(0)
    sampler.sample(1)
    before = [p.detach().clone() for p in net.parameters()]
    sampler.train_along(1, torch.randn(6, 1, 8, 8), torch.arange(3).repeat(2))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_bad_distance_fails_before_work() -> None:
    train, _ = load_dataset("digits")
    with pytest.raises(ValueError, match="unknown gradient distance"):
        condense(train, method="dc", ipc=1, steps=1, distance="l7", show_progress=False)


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_beats_random_selection_at_ipc1(method: str) -> None:
    """Same protocol for both sets: 3 seeds, 2 evaluation nets x 60 epochs each."""
    train, test = load_dataset("digits")
    ours, rand = [], []
    for seed in range(3):
        syn = condense(train, method=method, ipc=1, steps=30, seed=seed, lr_img=0.01, batch_real=32,
                       model_kwargs=NET, show_progress=False)
        assert syn.meta["method"] == method and syn.meta["steps_run"] == 30
        base = condense(train, method="random", ipc=1, seed=seed, show_progress=False)
        for s, out in ((syn, ours), (base, rand)):
            out.append(evaluate(s, test, models=2, epochs=60, seed=seed, model_kwargs=NET, show_progress=False).mean)
    assert statistics.fmean(ours) > statistics.fmean(rand) + 0.03, (ours, rand)
