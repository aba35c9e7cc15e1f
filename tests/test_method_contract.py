"""Every registry method keeps the estimator contract (looped over
``available_methods()``, no hand-typed list): it takes every base parameter,
clones through ``get_params``, fits, saves and loads, and a run stopped midway
and resumed from its checkpoint ends with the set of an uninterrupted run."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from condense.api import make_condenser
from condense.methods.base import Condenser, Distiller
from condense.registry import available_methods
from condense.synthetic_set import SyntheticSet
from loop_fixtures import fixture_params

METHODS = [m.name for m in available_methods()]


class Interrupted(Exception):
    """Stands for a crash, a kill or the end of a job slot."""


def base_params(cls: type) -> dict:
    """Every parameter of the base classes ``cls`` derives from, at the base's default."""
    out = {}
    for base in (Distiller, Condenser):
        if issubclass(cls, base):
            for p in inspect.signature(base.__init__).parameters.values():
                if p.name != "self" and p.default is not inspect.Parameter.empty:
                    out.setdefault(p.name, p.default)
    return out


def same_set(a: SyntheticSet, b: SyntheticSet) -> bool:
    soft_same = (a.soft_labels is None) == (b.soft_labels is None) and (
        a.soft_labels is None or torch.equal(a.soft_labels, b.soft_labels))
    return (torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and soft_same
            and a.typed_fields() == b.typed_fields())


@pytest.mark.parametrize("name", METHODS)
def test_constructs_with_every_base_parameter_and_clones(name) -> None:
    info = next(m for m in available_methods() if m.name == name)
    params = base_params(info.cls)
    condenser = make_condenser(name, **params)  # compile_real and optimizer included: no TypeError
    for key, value in params.items():
        assert getattr(condenser, key) == value, key
    clone = type(condenser)(**condenser.get_params())
    assert clone.get_params() == condenser.get_params()
    if issubclass(info.cls, Distiller):
        assert make_condenser(name, compile_real=False).compile_real is False


@pytest.mark.parametrize("name", METHODS)
def test_fits_saves_loads_and_resumes_like_an_uninterrupted_run(digits, tmp_path, name) -> None:
    info = next(m for m in available_methods() if m.name == name)
    params = fixture_params(name, info.cls, tmp_path)
    if issubclass(info.cls, Distiller):
        params["steps"] = 4
    condenser = make_condenser(name, **params)
    whole = type(condenser)(**condenser.get_params()).fit(digits[0]).synthetic_set_

    back = SyntheticSet.load(whole.save(tmp_path / "set.npz"))
    assert same_set(back, whole) and back.meta == whole.meta

    if not issubclass(info.cls, Distiller):
        return
    path = tmp_path / "run.ckpt.npz"

    def stop_at_2(step: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        if step == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        make_condenser(name, **params, callback=stop_at_2).fit(digits[0], checkpoint=path, checkpoint_every=1)
    assert path.exists()
    resumed = make_condenser(name, **params).fit(digits[0], checkpoint=path, checkpoint_every=1).synthetic_set_
    assert resumed.meta["resumed"]["from_step"] == 2
    assert same_set(resumed, whole)


def test_adam_optimizer_runs_and_differs_from_sgd(digits, tmp_path) -> None:
    params = fixture_params("dm", make_condenser("dm").__class__, Path(tmp_path))
    sgd = make_condenser("dm", **params).fit(digits[0]).synthetic_set_
    adam = make_condenser("dm", **params, optimizer="adam", lr_img=0.01).fit(digits[0]).synthetic_set_
    assert torch.isfinite(adam.images).all() and not torch.equal(adam.images, sgd.images)
    from condense.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="optimizer"):
        make_condenser("dm", **params, optimizer="rmsprop").fit(digits[0])
