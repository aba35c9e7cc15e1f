"""The real-data statistic: per-class sums and counts that add up across
batches, the methods that provide one, and a wrapper plugged in as a source."""

from __future__ import annotations

import pytest
import torch

from condense.api import make_condenser
from condense.methods.base import Distiller
from condense.models import build_model
from condense.real_data import RealData, group_means
from condense.registry import available_methods
from condense.statistic import BatchStatistic, ClassStatistic, StatisticUnsupportedError

NET = {"width": 8, "depth": 2}


def test_class_statistic_sums_means_and_adds() -> None:
    rows = torch.arange(12.0).reshape(6, 2)
    groups = torch.tensor([0, 0, 1, 1, 1, 2])
    stat = ClassStatistic.from_samples(rows, groups, 4)
    assert stat.counts.tolist() == [2, 3, 1, 0]
    assert torch.allclose(stat.means()[:3], group_means(rows, groups, 3))
    assert stat.means()[3].abs().sum() == 0  # an empty class is zeros, not NaN
    halves = ClassStatistic.from_samples(rows[:3], groups[:3], 4) + ClassStatistic.from_samples(rows[3:], groups[3:], 4)
    assert torch.equal(halves.sums, stat.sums) and torch.equal(halves.counts, stat.counts)
    assert torch.equal((ClassStatistic.zeros(4, 2) + stat).sums, stat.sums)


def test_families_with_and_without_a_statistic() -> None:
    have = {m.name for m in available_methods() if m.cls.supports_statistic}
    assert have == {"dm", "idm", "cafe", "dc", "dsa"}
    for info in available_methods():
        if info.cls.supports_statistic:
            continue
        with pytest.raises(StatisticUnsupportedError, match=f"method '{info.name}' has no real-data statistic: .+"):
            make_condenser(info.name).require_statistic()


@pytest.mark.parametrize("name", ["dc", "dm", "cafe"])
def test_per_sample_rows_sum_to_the_class_statistic(name) -> None:
    """DC's one-backward-per-class sum equals the sum of its torch.func per-sample gradients."""
    torch.manual_seed(0)
    method = make_condenser(name, amp=None)
    net = build_model("convnet", (1, 8, 8), 3, **NET)
    x, y = torch.randn(9, 1, 8, 8), torch.arange(3).repeat_interleave(3)
    rows = method.sample_statistic(net, x, y, y)
    assert rows.shape[0] == 9 and not rows.requires_grad
    fast = method.real_statistic(net, x, y, y, 3)
    slow = ClassStatistic.from_samples(rows, y, 3)
    assert torch.allclose(fast.sums, slow.sums, rtol=1e-4, atol=1e-5) and torch.equal(fast.counts, slow.counts)


class Doubled:
    """A wrapper source: the default statistic with every class counted twice (means unchanged)."""

    def __init__(self, real: RealData) -> None:
        self.inner, self.calls = BatchStatistic(real), 0

    def statistic(self, method, net, state, augment):
        self.calls += 1
        stat = self.inner.statistic(method, net, state, augment)
        return stat + stat


def _state(name: str, digits) -> tuple[Distiller, object, RealData]:
    method = make_condenser(name, ipc=1, steps=2, batch_real=8, model_kwargs=NET, amp=None, show_progress=False)
    real = RealData.prepare(digits[0], "cpu", ipc=1)
    return method, method.init_state(real), real


def test_a_wrapper_source_plugs_into_the_step_without_touching_the_method(digits) -> None:
    method, plain, real = _state("dm", digits)
    _, wrapped, _ = _state("dm", digits)
    source = Doubled(real)
    for _ in range(2):
        method.step(plain)
        method.step(wrapped, source)
    assert source.calls == 2 and wrapped.step == 2
    # sums and counts both doubled: the means, and so the step, are the same
    assert torch.allclose(plain.images, wrapped.images, atol=1e-6)


def test_a_method_without_a_statistic_refuses_a_wrapper_source(digits) -> None:
    method, state, real = _state("krr", digits)
    with pytest.raises(StatisticUnsupportedError, match="'krr'"):
        method.step(state, Doubled(real))
    method.step(state)  # its own real batch still works
    assert state.step == 1
