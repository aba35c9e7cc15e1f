"""CondensedBuffer: budget, resize, image space, cancel-safety, bad input, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("avalanche")

from condense.errors import CondenseError, InsufficientSamplesError, InvalidDataError  # noqa: E402
from condense.strategies import BufferBudgetError, CondensedBuffer, group_shares  # noqa: E402
from condense.strategies.experience_data import ExperienceTensors, read_dataset  # noqa: E402

DM_FAST = {"steps": 5, "batch_real": 16, "model_kwargs": {"width": 8}}


def experience(train, classes, task=0, limit=None) -> ExperienceTensors:
    """The digits of ``classes`` as one experience."""
    mask = torch.isin(train.y, torch.tensor(classes))
    x, y = train.x[mask], train.y[mask]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return ExperienceTensors(x, y, torch.full_like(y, task))


def snapshot(buf: CondensedBuffer):
    x, y, t = buf.tensors()
    return x.clone(), y.clone(), t.clone(), buf.max_size, len(buf.buffer)


def assert_same(buf: CondensedBuffer, snap) -> None:
    x, y, t, size, n = snap
    bx, by, bt = buf.tensors()
    assert torch.equal(bx, x) and torch.equal(by, y) and torch.equal(bt, t)
    assert buf.max_size == size and len(buf.buffer) == n


def test_group_shares_balance_and_remainder():
    groups = [(0, c) for c in range(3)]
    assert group_shares(groups, 10) == {(0, 0): 4, (0, 1): 3, (0, 2): 3}
    assert sum(group_shares([(0, c) for c in range(7)], 100).values()) == 100
    with pytest.raises(BufferBudgetError, match="at least 4"):
        group_shares([(0, c) for c in range(4)], 3)


@pytest.mark.parametrize("method,kwargs", [("random", {}), ("dm", DM_FAST)])
def test_budget_never_exceeded_and_resize_keeps_every_class(digits, method, kwargs):
    train, _ = digits
    buf = CondensedBuffer(23, method=method, method_kwargs=kwargs, resize_method="random", show_progress=False)
    seen: set[int] = set()
    stream = ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9]) if method == "random" else ([0, 1], [2, 3, 4], [5, 6])
    for classes in stream:
        buf.update_from_tensors(experience(train, classes))
        seen |= set(classes)
        sizes = buf.group_sizes()
        assert len(buf) <= 23 and len(buf.buffer) == len(buf)
        assert {c for _, c in sizes} == seen  # every class seen keeps images
        assert max(sizes.values()) - min(sizes.values()) <= 1  # balanced
        assert all(n >= 1 for n in sizes.values())
    assert len(buf) == 23  # the whole budget is used
    # Avalanche items have the experience's layout (x, y, t).
    x0, y0, t0 = buf.buffer[0]
    assert tuple(x0.shape) == (1, 8, 8) and int(t0) == 0


def test_dm_resize_recondenses_old_classes(digits):
    train, _ = digits
    buf = CondensedBuffer(12, method="random", resize_method="dm", resize_kwargs=DM_FAST, show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    before = buf.tensors()[0][buf.tensors()[1] == 0]
    buf.update_from_tensors(experience(train, [2, 3]))
    after = buf.tensors()[0][buf.tensors()[1] == 0]
    assert before.shape[0] == 6 and after.shape[0] == 3
    # DM moved the images: they are no longer a subset of the old ones.
    assert not all(any(torch.allclose(a, b) for b in before) for a in after)


def test_coreset_buffer_keeps_the_streams_pixel_space(digits):
    train, _ = digits
    for scale in (1.0, 255.0):  # raw [0, 1] pixels and an unnormalized 0..255 stream
        buf = CondensedBuffer(10, method="random", show_progress=False)
        exp = experience(train, [3, 4])
        exp = ExperienceTensors(exp.x * scale, exp.y, exp.t)
        buf.update_from_tensors(exp)
        x, y, _ = buf.tensors()
        flat = exp.x.flatten(1)
        for img in x.flatten(1):  # each stored image is one of the experience's images
            assert (flat - img).abs().max(1).values.min() < 1e-3 * scale


def test_total_classes_fixes_shares(digits):
    train, _ = digits
    buf = CondensedBuffer(20, method="random", total_classes=10, show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    assert buf.group_sizes() == {(0, 0): 2, (0, 1): 2}


def test_task_incremental_groups_keep_task_labels(digits):
    train, _ = digits
    buf = CondensedBuffer(8, method="random", show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1], task=0))
    buf.update_from_tensors(experience(train, [0, 1], task=1))  # same class ids, another task
    assert set(buf.group_sizes()) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert sorted(set(buf.tensors()[2].tolist())) == [0, 1]


def test_interrupted_condensation_leaves_previous_buffer_intact(digits):
    train, _ = digits
    calls = []

    def interrupt(step, images, labels):
        calls.append(step)
        if len(calls) > 8:  # the second experience's condensation
            raise KeyboardInterrupt

    buf = CondensedBuffer(20, method="dm", method_kwargs={**DM_FAST, "callback": interrupt}, resize_method="random",
                          show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    snap = snapshot(buf)
    with pytest.raises(KeyboardInterrupt):
        buf.update_from_tensors(experience(train, [2, 3]))
    assert_same(buf, snap)
    assert buf.updates == 1


def test_bad_inputs_raise_and_keep_the_buffer(digits):
    train, _ = digits
    buf = CondensedBuffer(6, method="random", show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    snap = snapshot(buf)
    # a budget smaller than the classes seen
    with pytest.raises(BufferBudgetError, match="cannot keep one image"):
        buf.update_from_tensors(experience(train, [2, 3, 4, 5, 6]))
    assert_same(buf, snap)
    # images of another shape
    other = ExperienceTensors(torch.rand(10, 1, 6, 6), torch.full((10,), 2), torch.zeros(10, dtype=torch.long))
    with pytest.raises(InvalidDataError, match="shape"):
        buf.update_from_tensors(other)
    assert_same(buf, snap)
    # a class smaller than its share
    small = experience(train, [2], limit=1)
    with pytest.raises(InsufficientSamplesError, match="class 2"):
        buf.update_from_tensors(small)
    assert_same(buf, snap)
    # an empty experience
    with pytest.raises(InvalidDataError, match="empty"):
        read_dataset(torch.utils.data.TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))
    # resize below the number of classes
    with pytest.raises(BufferBudgetError):
        buf.resize(None, 1)
    assert_same(buf, snap)
    # bad settings fail at construction, not after an experience
    with pytest.raises(CondenseError):
        CondensedBuffer(10, method="no-such-method")
    with pytest.raises(BufferBudgetError):
        CondensedBuffer(0)


def test_small_class_keep_policy_and_single_class_experience(digits):
    train, _ = digits
    buf = CondensedBuffer(10, method="herding", small_classes="keep", show_progress=False)
    buf.update_from_tensors(experience(train, [5]))  # one class: 10 images
    assert buf.group_sizes() == {(0, 5): 10}
    buf.update_from_tensors(experience(train, [6], limit=2))  # 2 samples, share 5: all kept
    assert buf.group_sizes() == {(0, 5): 5, (0, 6): 2}


def test_resize_shrinks_and_keeps_classes(digits):
    train, _ = digits
    buf = CondensedBuffer(20, method="random", show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1, 2, 3]))
    buf.resize(None, 8)
    assert buf.max_size == 8 and len(buf) == 8 and len(buf.group_sizes()) == 4


def test_save_load_round_trip(tmp_path, digits):
    train, _ = digits
    buf = CondensedBuffer(9, method="random", resize_method="random", seed=3, show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    buf.update_from_tensors(experience(train, [2, 3], task=1))
    path = buf.save(tmp_path / "buf.npz")
    with np.load(path, allow_pickle=False) as npz:  # plain arrays, no pickle
        assert all(npz[k].dtype != object for k in npz.files)
    loaded = CondensedBuffer.load(path, show_progress=False)
    assert loaded.groups == buf.groups and loaded.max_size == 9 and loaded.seed == 3
    for a, b in zip(loaded.tensors(), buf.tensors()):
        assert torch.equal(a, b)
    # the loaded buffer keeps working
    loaded.update_from_tensors(experience(train, [4]))
    assert len(loaded) <= 9 and (1, 2) in loaded.group_sizes()
    # garbage is refused, and the buffer is kept
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 1, 8, 8), np.float32))
    snap = snapshot(buf)
    with pytest.raises(InvalidDataError):
        buf.load_state(bad)
    assert_same(buf, snap)


def test_hostile_buffer_files_are_refused_and_the_buffer_kept(tmp_path, digits):
    train, _ = digits
    buf = CondensedBuffer(6, method="random", resize_method="random", total_classes=3, seed=0, show_progress=False)
    buf.update_from_tensors(experience(train, [0, 1]))
    path = buf.save(tmp_path / "buf.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    nan = dict(arrays, images=np.where(np.arange(arrays["images"].size).reshape(arrays["images"].shape) == 0,
                                        np.nan, arrays["images"]).astype(np.float32))
    flat = dict(arrays, images=arrays["images"].reshape(len(arrays["images"]), -1))
    far_label = dict(arrays, labels=np.full_like(arrays["labels"], 5))
    snap = snapshot(buf)
    for name, content in {"nan": nan, "flat": flat, "label": far_label}.items():
        np.savez(tmp_path / f"{name}.npz", **content)
        with pytest.raises(InvalidDataError):
            buf.load_state(tmp_path / f"{name}.npz")
        assert_same(buf, snap)
    (tmp_path / "text.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidDataError, match="not a CondensedBuffer file"):
        CondensedBuffer.load(tmp_path / "text.npz")
