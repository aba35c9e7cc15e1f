"""SyntheticSet: validation, exact save/load, hostile files refused, atomic writes."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from condense import InvalidSyntheticSetError, SyntheticSet


def make_set(n_per_class=2, classes=3, soft=False):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n_per_class * classes, 1, 8, 8, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    s = torch.randn(len(y), classes, generator=g) if soft else None
    return SyntheticSet(x, y, classes, s, {"method": "test", "normalization": {"mean": [0.5], "std": [0.25]}})


@pytest.mark.parametrize("soft", [False, True])
def test_save_load_round_trip_is_exact(tmp_path, soft):
    syn = make_set(soft=soft)
    loaded = SyntheticSet.load(syn.save(tmp_path / "s.npz"))
    assert torch.equal(loaded.images, syn.images)
    assert torch.equal(loaded.labels, syn.labels)
    assert loaded.num_classes == syn.num_classes
    assert loaded.meta == syn.meta
    if soft:
        assert torch.equal(loaded.soft_labels, syn.soft_labels)
    else:
        assert loaded.soft_labels is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda x, y: (x[0], y), "rank 4"),
        (lambda x, y: (x.clone().fill_(float("nan")), y), "NaN"),
        (lambda x, y: (x, y[:-1]), "labels must have shape"),
        (lambda x, y: (x, y + 5), "labels must lie in"),
        (lambda x, y: (x, y - 1), "labels must lie in"),
        (lambda x, y: (x[:0], y[:0]), "empty"),
    ],
)
def test_validate_names_the_problem(mutate, message):
    base = make_set()
    x, y = mutate(base.images.clone(), base.labels.clone())
    with pytest.raises(InvalidSyntheticSetError, match=message):
        SyntheticSet(x, y, 3)


def test_soft_labels_shape_checked():
    base = make_set()
    with pytest.raises(InvalidSyntheticSetError, match="soft_labels must have shape"):
        SyntheticSet(base.images, base.labels, 3, torch.zeros(len(base), 4))


def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def good_arrays():
    syn = make_set()
    return {"images": syn.images.numpy(), "labels": syn.labels.numpy(),
            "meta_json": np.array(json.dumps({"num_classes": 3, "meta": {}}))}


def test_pickled_arrays_are_refused(tmp_path):
    arrays = good_arrays()
    arrays["labels"] = np.array([{"evil": 1}] * 6, dtype=object)
    _write_npz(tmp_path / "p.npz", **arrays)
    with pytest.raises(InvalidSyntheticSetError, match="pickle|objects"):
        SyntheticSet.load(tmp_path / "p.npz")


@pytest.mark.parametrize("drop, extra", [("labels", None), (None, "payload")])
def test_missing_and_unexpected_keys_are_refused(tmp_path, drop, extra):
    arrays = good_arrays()
    if drop:
        arrays.pop(drop)
    if extra:
        arrays[extra] = np.zeros(3, dtype=np.float32)
    _write_npz(tmp_path / "k.npz", **arrays)
    with pytest.raises(InvalidSyntheticSetError, match="missing key|unexpected key"):
        SyntheticSet.load(tmp_path / "k.npz")


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(InvalidSyntheticSetError, match="not a readable"):
        SyntheticSet.load(tmp_path / "junk.npz")
    good = make_set().save(tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InvalidSyntheticSetError):
        SyntheticSet.load(tmp_path / "cut.npz")


def test_huge_header_is_refused_before_allocation(tmp_path):
    arrays = good_arrays()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 3, 1024, 1024)})
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as zf:
        zf.writestr("images.npy", b"\x93NUMPY" + buf.getvalue()[6:])
        for key in ("labels", "meta_json"):
            inner = io.BytesIO()
            np.save(inner, arrays[key])
            zf.writestr(f"{key}.npy", inner.getvalue())
    with pytest.raises(InvalidSyntheticSetError, match="limit"):
        SyntheticSet.load(tmp_path / "big.npz")


def test_wrong_dtypes_are_refused(tmp_path):
    arrays = good_arrays()
    arrays["images"] = arrays["images"].astype(np.float64)
    _write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(InvalidSyntheticSetError, match="float32"):
        SyntheticSet.load(tmp_path / "d.npz")


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = make_set().save(tmp_path / "s.npz")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        make_set(n_per_class=5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left behind


def test_denormalized_images_invert_normalization():
    syn = make_set()
    assert torch.allclose(syn.denormalized_images(), syn.images * 0.25 + 0.5)
    assert syn.nbytes == syn.images.numel() * 4 + syn.labels.numel() * 8


def test_saved_file_gets_the_permissions_of_any_new_file(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        path = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), 2).save(tmp_path / "s.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 under the umask, not the temporary file's 0o600
