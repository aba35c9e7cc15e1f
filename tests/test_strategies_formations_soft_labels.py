"""CondensedBuffer with multi-formation sets (IDM) and learned soft labels (KRR): the budget
counts stored images, replay expands formations and trains on the soft labels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("avalanche")

from condense.errors import CondenseError  # noqa: E402
from condense.strategies import CondensedBuffer, CondensedReplayPlugin  # noqa: E402
from condense.strategies.experience_data import ExperienceTensors  # noqa: E402

IDM_FAST = {"steps": 2, "batch_real": 16, "net_batch": 32, "model_kwargs": {"width": 8}}
KRR_SOFT = {"steps": 2, "batch_real": 16, "learn_labels": True, "model_kwargs": {"width": 8}}


def experience(train, classes, task=0) -> ExperienceTensors:
    mask = torch.isin(train.y, torch.tensor(classes))
    return ExperienceTensors(train.x[mask], train.y[mask], torch.full((int(mask.sum()),), task))


def filled_buffer(train, method: str, method_kwargs: dict, resize_method: str, classes: list[int]) -> CondensedBuffer:
    buf = CondensedBuffer(8, method=method, method_kwargs=method_kwargs, resize_method=resize_method, show_progress=False)
    buf.update_from_tensors(experience(train, classes))
    return buf


@pytest.fixture(scope="module")
def idm_buffer(digits):
    return filled_buffer(digits[0], "idm", IDM_FAST, "random", [0, 1])


@pytest.fixture(scope="module")
def krr_buffer(digits):
    return filled_buffer(digits[0], "krr", KRR_SOFT, "herding", [2, 3])


def test_a_formation_image_costs_one_image_and_expands_at_replay(idm_buffer):
    one_image = 1 * 8 * 8 * 4
    assert len(idm_buffer) == 8 and idm_buffer.nbytes == 8 * one_image  # the budget: 8 images of the input's size
    assert {idm_buffer.stored_group(g).formation_factor for g in idm_buffer.groups} == {2}
    x, y, t, targets = idm_buffer.replay_tensors()
    assert x.shape == (32, 1, 8, 8) and targets is None  # 4 training images per stored one
    assert sorted(torch.bincount(y).tolist()) == [16, 16]
    assert len(idm_buffer.buffer) == 32  # Avalanche's view (what ReplayPlugin-style users read) is expanded too
    stored = idm_buffer.stored_group((0, 0)).images
    assert not torch.equal(x[:4], stored[:1].expand(4, -1, -1, -1))  # the tiles, not copies of the packed image


def test_a_formation_group_keeps_its_formation_when_resized(idm_buffer, digits):
    train, _ = digits
    buf = CondensedBuffer(8, method="idm", method_kwargs=IDM_FAST, resize_method="random", show_progress=False)
    buf._commit(dict(idm_buffer._groups), idm_buffer._image_shape)
    buf.updates = 1
    buf.update_from_tensors(experience(train, [4, 5]))  # 4 groups share 8 images: old ones shrink to 2
    assert buf.group_sizes() == {(0, 0): 2, (0, 1): 2, (0, 4): 2, (0, 5): 2}
    assert {buf.stored_group(g).formation_factor for g in buf.groups} == {2}
    old = idm_buffer.stored_group((0, 0)).images
    kept = buf.stored_group((0, 0)).images
    # random resize selects whole packed images (up to the normalize/denormalize round trip)
    assert all(any(torch.allclose(k, o, atol=1e-5) for o in old) for k in kept)
    assert buf.replay_tensors()[0].shape[0] == 32
    with pytest.raises(CondenseError, match="formation"):  # packing packed images again is refused, buffer kept
        buf.resize_method, buf.resize_kwargs = "idm", {**IDM_FAST, "init": "noise"}
        buf.resize(None, 4)
    assert len(buf) == 8 and buf.max_size == 8


def test_learned_soft_labels_are_kept_and_replayed(krr_buffer):
    group = krr_buffer.stored_group((0, 2))
    assert group.soft_labels is not None and group.soft_labels.shape == (4, 4)
    x, y, t, targets = krr_buffer.replay_tensors()
    assert targets is not None and targets.shape == (8, 4)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert torch.allclose(targets[y == 2], F.softmax(group.soft_labels, 1))
    assert not torch.allclose(targets, F.one_hot(y, 4).float(), atol=1e-3)  # learned, not one-hot
    assert krr_buffer.label_nbytes == 16 * 8 + 8 * 4 * 4


def test_resize_carries_soft_labels_to_the_selected_rows(krr_buffer):
    before = krr_buffer.stored_group((0, 3))
    buf = CondensedBuffer(8, method="krr", method_kwargs=KRR_SOFT, resize_method="herding", show_progress=False)
    buf._commit(dict(krr_buffer._groups), krr_buffer._image_shape)
    buf.resize(None, 4)
    after = buf.stored_group((0, 3))
    assert len(after) == 2 and after.soft_labels is not None
    for img, soft in zip(after.images, after.soft_labels):
        row = int(((before.images - img).flatten(1).abs().amax(1)).argmin())
        assert torch.allclose(before.images[row], img, atol=1e-5)
        assert torch.equal(soft, before.soft_labels[row])


def test_replay_loss_uses_the_soft_targets(krr_buffer):
    plugin = CondensedReplayPlugin(krr_buffer)
    out = torch.randn(6, 10)
    y = torch.tensor([0, 1, 2, 3, 2, 3])
    hard = F.cross_entropy(out, y)
    targets = torch.softmax(torch.randn(2, 4), 1)
    strategy = SimpleNamespace(mb_output=out, mb_y=y, loss=hard.clone())
    plugin._n_buffer, plugin._targets = 2, targets
    plugin.before_backward(strategy)
    soft_part = -(F.pad(targets, (0, 6)) * F.log_softmax(out[-2:], 1)).sum(1).sum()
    expected = (F.cross_entropy(out[:4], y[:4], reduction="sum") + soft_part) / 6
    assert torch.allclose(strategy.loss, expected)


def test_buffer_only_training_reads_soft_targets_from_the_dataset(krr_buffer):
    items = krr_buffer.training_dataset()
    x, y, target, t = items[0]
    assert len(items) == 8 and target.shape == (4,) and abs(float(target.sum()) - 1) < 1e-5
    assert len(krr_buffer.buffer[0]) == 3  # the replay view keeps the experiences' (x, y, t) layout


def test_save_load_keeps_formations_and_soft_labels(tmp_path, idm_buffer, krr_buffer):
    for buf in (idm_buffer, krr_buffer):
        path = buf.save(tmp_path / "b.npz")
        back = CondensedBuffer.load(path)
        for a, b in zip(buf.replay_tensors(), back.replay_tensors()):
            assert (a is None and b is None) or torch.equal(a, b)
        assert back.group_sizes() == buf.group_sizes()


def test_a_version_1_buffer_file_still_loads(tmp_path, krr_buffer):
    arrays = {k: v for k, v in krr_buffer.state_arrays().items()
              if k not in ("formation_factors", "soft_labels", "has_soft_labels")}
    np.savez(tmp_path / "old.npz", **arrays)
    back = CondensedBuffer.load(tmp_path / "old.npz")
    assert len(back) == 8 and back.replay_tensors()[3] is None  # hard labels, factor 1
