"""Trajectory matching (MTT): expert buffers, the constant-memory meta-gradient,
learnable soft labels and step size, and accuracy against random selection."""

from __future__ import annotations

import dataclasses

import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from condense.api import condense, make_condenser
from condense.autograd_memory import SavedTensorMeter
from condense.evaluation import evaluate
from condense.experts import ExpertBuffer, InvalidExpertBufferError
from condense.learned_step_size import LearnedStepSize
from condense.methods.base import StepBatch
from condense.real_data import RealData
from condense.synthetic_set import SyntheticSet

# Depth 2: on 8x8 digits a third block would instance-normalise 2x2 maps.
NET = {"width": 16, "depth": 2}
EXPERTS = {"num_experts": 2, "expert_train_epochs": 4, "expert_batch_size": 32, "max_start_epoch": 2}


@pytest.fixture(scope="module")
def expert_file(digits, tmp_path_factory) -> Path:
    """One buffer for the whole module, built by the method's own automatic step."""
    path = tmp_path_factory.mktemp("experts") / "digits_experts.npz"
    condense(digits[0], method="mtt", ipc=1, steps=0, model_kwargs=NET, expert_path=str(path), show_progress=False, **EXPERTS)
    return path


def mtt(**params):
    return make_condenser("mtt", model_kwargs=NET, show_progress=False, **{**EXPERTS, **params})


def one_meta_gradient(train, expert_file: Path, mode: str, syn_steps: int):
    """Loss and gradients of one MTT objective evaluation, with every random draw fixed."""
    method = mtt(ipc=2, syn_steps=syn_steps, max_start_epoch=1, meta_gradient=mode, soft_labels=True,
                 expert_path=str(expert_file))
    real = RealData.prepare(train, "cpu", ipc=2)
    state = method.init_state(real)
    segment = state.sampler.sample(0)
    state.generators["student"] = torch.Generator().manual_seed(7)
    x = state.images
    loss = method.objective(StepBatch(0, segment, None, None, None, x, state.labels, state.groups, 10), state)
    loss.backward()
    return float(loss.detach()), x.grad, state.learned["syn_lr"].grad, state.learned["soft_labels"].grad


def test_exact_meta_gradient_equals_backprop_through_the_unroll(digits, expert_file) -> None:
    ref = one_meta_gradient(digits[0], expert_file, "unrolled", 4)
    exact = one_meta_gradient(digits[0], expert_file, "exact", 4)
    tesla = one_meta_gradient(digits[0], expert_file, "tesla", 4)
    assert exact[0] == pytest.approx(ref[0], rel=1e-5)
    for a, b in zip(exact[1:], ref[1:]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6 * float(b.abs().max())), (a, b)
    # TESLA drops the Hessian terms: same loss, a different (approximate) gradient.
    assert tesla[0] == pytest.approx(ref[0], rel=1e-5)
    assert not torch.allclose(tesla[1], ref[1], rtol=1e-3)


def test_memory_is_flat_in_unrolled_steps(digits, expert_file) -> None:
    peaks: dict[str, list[int]] = {"exact": [], "unrolled": []}
    for mode in peaks:
        for syn_steps in (2, 4, 8):
            with SavedTensorMeter() as meter:
                one_meta_gradient(digits[0], expert_file, mode, syn_steps)
            peaks[mode].append(meter.peak)
    exact, unrolled = peaks["exact"], peaks["unrolled"]
    assert max(exact) <= 1.05 * min(exact), exact
    assert unrolled[2] > 3 * unrolled[0], unrolled  # the plain unroll grows ~linearly: the meter sees it
    assert exact[2] < unrolled[2] / 3


def test_expert_buffer_round_trips(digits, expert_file, tmp_path) -> None:
    buffer = ExpertBuffer.load(expert_file)
    assert buffer.num_experts == 2 and buffer.epochs == 4
    copy = tmp_path / "copy.npz"
    buffer.save(copy)
    again = ExpertBuffer.load(copy)
    assert again.meta == buffer.meta
    assert all(torch.equal(a, b) for a, b in zip(again.trajectories, buffer.trajectories))
    # Trajectories move: every epoch changes the parameters.
    assert all(float((t[1:] - t[:-1]).norm(dim=1).min()) > 0 for t in buffer.trajectories)


def test_bad_expert_buffers_are_refused(digits, expert_file, tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidExpertBufferError, match="not an npz"):
        ExpertBuffer.load(bad)
    with np.load(expert_file) as npz:
        arrays = dict(npz)
    arrays["trajectory_0000"] = arrays["trajectory_0000"][:, :-3]
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(InvalidExpertBufferError, match="trajectory 0 has shape"):
        ExpertBuffer.load(tmp_path / "short.npz")
    with pytest.raises(InvalidExpertBufferError, match="no expert buffer"):
        ExpertBuffer.load(tmp_path / "missing.npz")
    # A buffer for another architecture is named as such, not silently used.
    with pytest.raises(InvalidExpertBufferError, match="parameters do not match"):
        condense(digits[0], method="mtt", ipc=1, steps=1, model_kwargs={"width": 8, "depth": 2},
                 expert_path=str(expert_file), show_progress=False)
    # Asking for more epochs than the buffer holds is an error, not a fallback.
    with pytest.raises(InvalidExpertBufferError, match="records 4 epochs"):
        condense(digits[0], method="mtt", ipc=1, steps=1, model_kwargs=NET, expert_path=str(expert_file),
                 max_start_epoch=4, expert_epochs=2, show_progress=False)


def test_automatic_buffer_is_built_once(digits, tmp_path, monkeypatch) -> None:
    small = {"num_experts": 1, "expert_train_epochs": 2, "max_start_epoch": 1, "expert_epochs": 1, "syn_steps": 2}
    condense(digits[0], method="mtt", ipc=1, steps=1, model_kwargs=NET, expert_cache=str(tmp_path), show_progress=False, **small)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached buffer must be reused")

    monkeypatch.setattr("condense.methods.mtt.train_experts", no_training)
    syn = condense(digits[0], method="mtt", ipc=1, steps=1, model_kwargs=NET, expert_cache=str(tmp_path), show_progress=False, **small)
    assert syn.meta["experts"]["path"] == str(files[0])


def test_soft_labels_and_step_size_round_trip(digits, expert_file, tmp_path) -> None:
    train, test = digits
    syn = condense(train, method="mtt", ipc=1, steps=3, model_kwargs=NET, expert_path=str(expert_file),
                   soft_labels=True, syn_steps=4, show_progress=False, **EXPERTS)
    assert syn.soft_labels is not None and syn.soft_labels.shape == (10, 10)
    assert syn.learned_lr.value > 0 and syn.learned_lr.value != pytest.approx(0.01, rel=1e-9)  # learned
    path = syn.save(tmp_path / "soft.npz")
    back = SyntheticSet.load(path)
    assert torch.equal(back.soft_labels, syn.soft_labels)
    assert back.learned_lr.value == syn.learned_lr.value
    result = evaluate(back, test, models=1, epochs=2, model_kwargs=NET, show_progress=False)
    assert result.soft_labels is True and "soft labels" in str(result)
    assert result.extra["lr"] == pytest.approx(syn.learned_lr.value)  # trained with the learned step size
    assert result.extra["lr_source"] == "learned"
    fixed = evaluate(back, test, models=1, epochs=2, model_kwargs=NET, lr=0.01, show_progress=False)
    assert fixed.extra["lr"] == 0.01
    # A step size learned for one student is not used on another architecture.
    wider = evaluate(back, test, models=1, epochs=2, model_kwargs={**NET, "width": 2 * NET["width"]}, show_progress=False)
    assert wider.extra["lr"] == 0.01 and "learned for convnet" in wider.extra["lr_source"]
    # The same network spelled differently is the same architecture.
    lr = back.learned_lr.value
    spelled = dataclasses.replace(back, learned_lr=LearnedStepSize(lr, "convnet", {**NET, "pooling": "avg"}))
    assert evaluate(spelled, test, models=1, epochs=1, model_kwargs=NET, show_progress=False).extra["lr"] == pytest.approx(syn.learned_lr.value)
    # A set with no record of its student keeps the learned rate.
    bare = dataclasses.replace(back, learned_lr=LearnedStepSize(lr))
    assert evaluate(bare, test, models=1, epochs=1, model_kwargs={"width": 8}, show_progress=False).extra["lr_source"] == "learned"
    # A record naming no buildable network (or a huge one) falls back without building anything real.
    for record in ({"model": "convnet", "model_kwargs": {"bogus": 1}}, {"model": "convnet", "model_kwargs": {"width": 10**7}}):
        odd = dataclasses.replace(back, learned_lr=LearnedStepSize(lr, record["model"], record["model_kwargs"]))
        assert evaluate(odd, test, models=1, epochs=1, model_kwargs=NET, show_progress=False).extra["lr"] == 0.01
    with pytest.raises(ValueError, match="lr must be"):
        evaluate(back, test, models=1, epochs=1, model_kwargs=NET, lr=-1.0, show_progress=False)


def test_beats_random_selection_at_ipc1(digits, expert_file) -> None:
    """Same protocol for both sets: 3 seeds, 2 evaluation nets x 60 epochs each."""
    train, test = digits
    ours, rand = [], []
    for seed in range(3):
        syn = condense(train, method="mtt", ipc=1, steps=15, seed=seed, lr_img=10.0, syn_steps=10,
                       model_kwargs=NET, expert_path=str(expert_file), show_progress=False, **EXPERTS)
        base = condense(train, method="random", ipc=1, seed=seed, show_progress=False)
        for s, out in ((syn, ours), (base, rand)):
            out.append(evaluate(s, test, models=2, epochs=60, seed=seed, model_kwargs=NET, show_progress=False).mean)
    assert statistics.fmean(ours) > statistics.fmean(rand) + 0.05, (ours, rand)
