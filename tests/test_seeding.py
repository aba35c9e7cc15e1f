"""Per-step seeding: the network of step t depends only on (seed, t); fit neither
reseeds nor reads torch's global generator."""

from __future__ import annotations

import pytest
import torch

from condense.api import condense
from condense.models import build_model
from condense.registry import available_methods
from condense.samplers import RandomInitSampler
from condense.seeding import derive_seed, reinitialize, step_generator

NET = {"width": 8, "depth": 2}


def _weights(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def test_step_generator_depends_only_on_seed_step_and_stream() -> None:
    draw = lambda *a: torch.rand(4, generator=step_generator(*a))  # noqa: E731
    assert torch.equal(draw(3, 7, "net"), draw(3, 7, "net"))
    assert not torch.equal(draw(3, 7, "net"), draw(3, 8, "net"))
    assert not torch.equal(draw(3, 7, "net"), draw(4, 7, "net"))
    assert not torch.equal(draw(3, 7, "net"), draw(3, 7, "batch"))
    assert derive_seed(3, 7, "net") != derive_seed(3, 7, "augment")


def test_reinitialize_draws_from_the_generator_and_leaves_the_global_one() -> None:
    net = build_model("convnet", (1, 8, 8), 10, **NET)
    before = torch.get_rng_state()
    a = _weights(reinitialize(net, torch.Generator().manual_seed(5))).clone()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(123)  # the global state does not matter
    b = _weights(reinitialize(net, torch.Generator().manual_seed(5)))
    assert torch.equal(a, b)
    assert not torch.equal(a, _weights(reinitialize(net, torch.Generator().manual_seed(6))))


def test_random_init_sampler_gives_the_same_network_for_a_step_on_every_worker() -> None:
    build = lambda: build_model("convnet", (1, 8, 8), 10, **NET)  # noqa: E731
    one, other = RandomInitSampler(build, "cpu", seed=2), RandomInitSampler(build, "cpu", seed=2)
    w5 = _weights(one.sample(5)).clone()
    other.sample(9)  # whatever a worker drew before
    assert torch.equal(_weights(other.sample(5)), w5)
    assert not torch.equal(_weights(one.sample(6)), w5)


@pytest.mark.parametrize("name", [m.name for m in available_methods()])
def test_fit_leaves_the_global_generator_and_does_not_depend_on_it(digits, tmp_path, name) -> None:
    from loop_fixtures import run

    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = run(name, tmp_path)
    assert torch.equal(torch.get_rng_state(), state), f"{name} changed torch's global generator"
    torch.manual_seed(12345)
    second = run(name, tmp_path)
    assert torch.equal(first.images, second.images), f"{name}: the result depends on the global generator"
