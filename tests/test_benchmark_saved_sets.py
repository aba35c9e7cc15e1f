"""The distillation benchmark's set store: a run cut short is evaluated later, not condensed again."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
import torch

from condense.api import make_condenser
from condense.errors import InvalidSyntheticSetError
from condense.serialization import json_safe
from condense.synthetic_set import SyntheticSet

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    saved_sets = importlib.import_module("saved_sets")
    distill = importlib.import_module("distill_mnist")
    return saved_sets, distill


def _key(**change):
    key = {"data": "digits", "method": "dm", "ipc": 2, "seed": 0, "step": 5, "run_steps": 5, "params": {"steps": 5}}
    return {**key, **change}


def _set() -> SyntheticSet:
    gen = torch.Generator().manual_seed(0)
    return SyntheticSet(torch.randn(4, 1, 8, 8, generator=gen), torch.tensor([0, 0, 1, 1]), 2, None, {"method": "dm"})


def test_store_returns_the_saved_set_only_for_the_same_key(bench, tmp_path):
    saved_sets, _ = bench
    store = saved_sets.SavedSets(tmp_path)
    syn = _set()
    store.save(syn, _key(), seconds=12.5, peak_mib=300.0)

    loaded, seconds, peak = store.load(_key())
    assert torch.equal(loaded.images, syn.images) and torch.equal(loaded.labels, syn.labels)
    assert (seconds, peak) == (12.5, 300.0)
    assert store.load(_key(params={"steps": 5, "batch_real": 64})) is None  # other hyperparameters
    assert store.load(_key(seed=1)) is None  # no file
    assert store.path(_key(step=2, run_steps=5)) != store.path(_key(step=2, run_steps=2))


def test_store_refuses_a_set_made_under_another_default(bench, tmp_path):
    """A key holds only the passed parameters; a set made when a default was different must not pass for today's."""
    saved_sets, _ = bench
    store = saved_sets.SavedSets(tmp_path)
    today = json_safe(make_condenser("dm", ipc=2, seed=0, steps=5).get_params())
    store.save(dataclasses.replace(_set(), meta={"method": "dm", "hyperparameters": today}), _key(), 1.0, 1.0)
    assert store.load(_key()) is not None

    yesterday = {**today, "lr_img": today["lr_img"] * 10, "show_progress": not today["show_progress"]}
    store.save(dataclasses.replace(_set(), meta={"method": "dm", "hyperparameters": yesterday}), _key(), 1.0, 1.0)
    assert store.load(_key()) is None
    only_display = {**today, "show_progress": not today["show_progress"]}  # not part of what the set is
    store.save(dataclasses.replace(_set(), meta={"method": "dm", "hyperparameters": only_display}), _key(), 1.0, 1.0)
    assert store.load(_key()) is not None


def test_store_names_a_corrupt_file(bench, tmp_path):
    saved_sets, _ = bench
    store = saved_sets.SavedSets(tmp_path)
    store.path(_key()).write_bytes(b"not an npz")
    with pytest.raises(InvalidSyntheticSetError, match=store.path(_key()).name):
        store.load(_key())


def test_a_second_run_evaluates_the_saved_sets_without_condensing(bench, tmp_path, monkeypatch):
    _, distill = bench
    args = ["--data", "digits", "--methods", "dm", "--ipc", "1", "--seeds", "0", "--steps", "3", "--checkpoints", "2",
            "--eval-models", "1", "--eval-epochs", "2", "--quiet", "--sets-dir", str(tmp_path / "sets")]
    first = tmp_path / "first.jsonl"
    assert distill.main([*args, "--jsonl", str(first), "--out", str(tmp_path / "first.md")]) == 0
    names = sorted(p.name for p in (tmp_path / "sets").iterdir())
    assert [n for n in names if not n.endswith(".ckpt.npz")] == [
        "digits_dm_ipc1_seed0_step2of3.npz", "digits_dm_ipc1_seed0_step3of3.npz"]
    assert len([n for n in names if n.endswith(".ckpt.npz")]) == 1  # the run's resumable state

    def no_condensing(*a, **k):
        raise AssertionError("the saved sets should have been evaluated instead")

    monkeypatch.setattr(distill, "condense", no_condensing)
    second = tmp_path / "second.jsonl"
    assert distill.main([*args, "--jsonl", str(second), "--out", str(tmp_path / "second.md")]) == 0
    runs = [[json.loads(line) for line in path.read_text().splitlines()] for path in (first, second)]
    assert [r["steps"] for r in runs[1]] == [2, 3]
    assert [r["condensed_earlier"] for r in runs[0]] == [False, False]
    assert [r["condensed_earlier"] for r in runs[1]] == [True, True]
    for before, after in zip(*runs):  # same sets, same seeded evaluation, same condensation cost reported
        assert after["seconds"] == before["seconds"] and after["peak_mib"] == before["peak_mib"]
        assert after["model_accuracies"] == before["model_accuracies"]


def test_a_run_killed_while_condensing_continues_from_its_checkpoint(bench, tmp_path, monkeypatch, capsys):
    saved_sets, distill = bench
    args = ["--data", "digits", "--methods", "dm", "--ipc", "1", "--seeds", "0", "--steps", "4",
            "--param", "dm:batch_real=8", "--eval-models", "1", "--eval-epochs", "1", "--quiet",
            "--checkpoint-every", "1", "--out", str(tmp_path / "r.md")]
    real_condense = distill.condense

    class Killed(Exception):
        pass

    def killed_at_step_2(*a, **k):
        def callback(step, images, labels):
            if step == 2:
                raise Killed
        return real_condense(*a, **{**k, "callback": callback})

    monkeypatch.setattr(distill, "condense", killed_at_step_2)
    with pytest.raises(Killed):
        distill.main([*args, "--sets-dir", str(tmp_path / "sets")])
    monkeypatch.setattr(distill, "condense", real_condense)
    capsys.readouterr()
    assert distill.main([*args, "--sets-dir", str(tmp_path / "sets"), "--jsonl", str(tmp_path / "a.jsonl")]) == 0
    assert "continued from step 2" in capsys.readouterr().out
    assert distill.main([*args, "--sets-dir", str(tmp_path / "fresh"), "--jsonl", str(tmp_path / "b.jsonl")]) == 0
    key = {"data": "digits", "method": "dm", "ipc": 1, "seed": 0, "step": 4, "run_steps": 4,
           "params": {"steps": 4, "batch_real": 8}}
    resumed, _, _ = saved_sets.SavedSets(tmp_path / "sets").load(key)
    fresh, _, _ = saved_sets.SavedSets(tmp_path / "fresh").load(key)
    assert torch.equal(resumed.images, fresh.images)
    assert resumed.meta["resumed"]["from_step"] == 2 and "resumed" not in fresh.meta


def test_checkpoint_name_ignores_steps_only(bench, tmp_path):
    saved_sets, _ = bench
    store = saved_sets.SavedSets(tmp_path)
    path = store.checkpoint_path(_key())
    assert store.checkpoint_path(_key(params={"steps": 50}, step=50, run_steps=50)) == path  # a longer run continues it
    assert store.checkpoint_path(_key(params={"steps": 5, "batch_real": 64})) != path
    assert store.checkpoint_path(_key(seed=1)) != path
