"""Resumable distillation: a run stopped midway and resumed from its checkpoint
ends with exactly the set of an uninterrupted run, for every method; a checkpoint
of another run, or a malformed or hostile file, is refused and left as it was."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from condense.api import condense
from condense.checkpoint import InvalidCheckpointError, LoopCheckpoint

NET = {"width": 16, "depth": 2}  # depth 2: a third block would instance-normalise 2x2 maps of 8x8 digits
STEPS = 6
# Settings that make each method's sampler carry state across the interruption
# (DC/DSA mid-way through an outer loop, IDM after its queue has grown).
METHODS = {
    "dm": {},
    "dc": {"outer_loop": 4, "inner_loop": 2},
    "dsa": {"outer_loop": 4, "inner_loop": 2},
    "idm": {"refresh_every": 2, "queue_size": 2},
    "cafe": {},
    "krr": {"learn_labels": True},
    "bptt": {},
    "mtt": {"soft_labels": True, "num_experts": 2, "expert_train_epochs": 4, "expert_batch_size": 32, "max_start_epoch": 2},
}


class Interrupted(Exception):
    """Stands for a crash, a kill or the end of a job slot."""


def stop_at(step: int):
    def callback(current: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        if current == step:
            raise Interrupted
    return callback


def params(method: str, tmp_path: Path) -> dict:
    extra = dict(METHODS[method])
    if method == "mtt":
        extra["expert_path"] = str(tmp_path / "experts.npz")  # built once by the first run, reused after
    else:
        extra["batch_real"] = 16
    return {"method": method, "ipc": 1, "seed": 3, "show_progress": False, "model_kwargs": NET, **extra}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_resumed_run_equals_uninterrupted_run(digits, tmp_path, method) -> None:
    kw = params(method, tmp_path)
    whole = condense(digits[0], steps=STEPS, **kw)
    path = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupted):
        # saved after steps 2 and 4; stopped during step index 4, so the step-4 save never happens
        condense(digits[0], steps=STEPS, checkpoint=path, checkpoint_every=2, callback=stop_at(4), **kw)
    assert LoopCheckpoint.load(path).step == 4
    ran: list[int] = []
    resumed = condense(digits[0], steps=STEPS, checkpoint=path, checkpoint_every=2,
                       callback=lambda step, x, y: ran.append(step), **kw)
    assert ran == [4, 5]  # only the steps the interruption lost
    assert resumed.meta["resumed"]["from_step"] == 4
    assert torch.equal(resumed.images, whole.images)
    assert (resumed.soft_labels is None) == (whole.soft_labels is None)
    if whole.soft_labels is not None:
        assert torch.equal(resumed.soft_labels, whole.soft_labels)
    for key in ("final_loss", "steps_run", "inner_lr"):
        assert resumed.meta.get(key) == whole.meta.get(key), key
    assert resumed.learned_lr == whole.learned_lr


def test_restoring_the_sampler_matters(digits, tmp_path, monkeypatch) -> None:
    """Control: with the trained-along network not restored, DC's resumed run differs."""
    from condense.methods.dc import TrainedAlongSampler

    kw = params("dc", tmp_path)
    whole = condense(digits[0], steps=STEPS, **kw)
    path = tmp_path / "run.ckpt.npz"
    with pytest.raises(Interrupted):
        condense(digits[0], steps=STEPS, checkpoint=path, checkpoint_every=1, callback=stop_at(2), **kw)
    monkeypatch.setattr(TrainedAlongSampler, "load_state_dict", lambda self, state: None)
    resumed = condense(digits[0], steps=STEPS, checkpoint=path, **kw)
    assert not torch.equal(resumed.images, whole.images)


def test_finished_run_continues_to_more_steps(digits, tmp_path) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    short = condense(digits[0], steps=3, checkpoint=path, **kw)
    assert LoopCheckpoint.load(path).step == 3  # the last step is always saved
    longer = condense(digits[0], steps=STEPS, checkpoint=path, **kw)
    assert torch.equal(longer.images, condense(digits[0], steps=STEPS, **kw).images)
    assert not torch.equal(longer.images, short.images)
    assert longer.meta["resumed"]["earlier_seconds"] > 0
    assert longer.meta["seconds"] >= longer.meta["resumed"]["earlier_seconds"]


def test_finished_run_is_not_run_again(digits, tmp_path) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    first = condense(digits[0], steps=3, checkpoint=path, **kw)
    calls: list[int] = []
    again = condense(digits[0], steps=3, checkpoint=path, callback=lambda s, x, y: calls.append(s), **kw)
    assert calls == []
    assert torch.equal(again.images, first.images)


def test_fewer_steps_than_saved_are_refused(digits, tmp_path) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    condense(digits[0], steps=4, checkpoint=path, **kw)
    with pytest.raises(InvalidCheckpointError, match="step 4, beyond steps=2"):
        condense(digits[0], steps=2, checkpoint=path, **kw)


@pytest.mark.parametrize("change, named", [
    ({"lr_img": 0.5}, "lr_img"),
    ({"seed": 4}, "seed"),
    ({"method": "cafe"}, "method"),
])
def test_checkpoint_of_another_run_is_refused_and_kept(digits, tmp_path, change, named) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    condense(digits[0], steps=2, checkpoint=path, **kw)
    before = path.read_bytes()
    with pytest.raises(InvalidCheckpointError, match=named):
        condense(digits[0], steps=4, checkpoint=path, **{**kw, **change})
    assert path.read_bytes() == before


def test_checkpoint_of_other_data_is_refused(digits, tmp_path) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    x, y = digits[0].x, digits[0].y
    condense((x, y), steps=2, checkpoint=path, **kw)
    with pytest.raises(InvalidCheckpointError, match="source"):
        condense((x.flip(0), y.flip(0)), steps=4, checkpoint=path, **kw)


def test_failed_save_keeps_the_previous_checkpoint(digits, tmp_path, monkeypatch) -> None:
    kw = params("dm", tmp_path)
    path = tmp_path / "dm.npz"
    condense(digits[0], steps=2, checkpoint=path, **kw)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        condense(digits[0], steps=4, checkpoint=path, checkpoint_every=1, **kw)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name != "dm.npz"] == []  # no temporary file left


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, (replace or {}).get(name, zin.read(name)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_hostile_or_corrupt_files_are_refused(digits, tmp_path) -> None:
    kw = params("dm", tmp_path)
    good = tmp_path / "good.npz"
    condense(digits[0], steps=2, checkpoint=good, **kw)
    header = LoopCheckpoint.load(good)
    # (how the file is spoiled, what the error must say)
    cases = [
        (lambda p: p.write_bytes(b"not a zip at all"), "not an .npz"),
        (lambda p: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]), "not a readable checkpoint"),
        (lambda p: _rewrite(good, p, add={"evil.npy": _npy(np.array([{"a": 1}], dtype=object))}), "Python objects"),
        (lambda p: _rewrite(good, p, add={"../escape.npy": _npy(np.zeros(1))}), "unexpected member"),
        (lambda p: _rewrite(good, p, replace={"meta_json.npy": _npy(np.array('{"format_version": 99}'))}), "of format 2"),
        (lambda p: _rewrite(good, p, replace={"meta_json.npy": _npy(np.array(
            '{"format_version": 2, "step": 2, "identity": {}, "losses": [1.0], "elapsed_seconds": 1}'))}), "losses must be"),
        (lambda p: _rewrite(good, p, replace={"rng.loop.npy": _npy(np.zeros(3, np.uint8))}), "not a generator state"),
        (lambda p: _rewrite(good, p, replace={"learned.images.npy": _npy(np.zeros((1, 1, 4, 4), np.float32))}), "has shape"),
        (lambda p: _rewrite(good, p, replace={"optim.0.momentum_buffer.npy": _npy(np.zeros(3, np.float32))}),
         "optimizer state '0.momentum_buffer' has shape"),
    ]
    assert header.step == 2
    for i, (spoil, reason) in enumerate(cases):
        path = tmp_path / f"bad_{i}.npz"
        spoil(path)
        with pytest.raises(InvalidCheckpointError, match=re.escape(reason)):
            condense(digits[0], steps=4, checkpoint=path, **kw)


def test_selection_methods_write_no_checkpoint(digits, tmp_path) -> None:
    path = tmp_path / "herding.npz"
    syn = condense(digits[0], method="random", ipc=2, checkpoint=path, show_progress=False)
    assert len(syn) == 20 and not path.exists()


def test_checkpoint_every_must_be_a_positive_integer(digits, tmp_path) -> None:
    from condense.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="checkpoint_every"):
        condense(digits[0], steps=2, checkpoint=tmp_path / "x.npz", checkpoint_every=0, **params("dm", tmp_path))
