"""Core hardening: reproducible repeated runs, hostile files, metadata and parameter checks."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from condense import condense, evaluate
from condense.data import image_folder
from condense.data.tensor_data import TensorData
from condense.errors import InvalidDataError, InvalidParameterError, InvalidSyntheticSetError
from condense.experts import ExpertBuffer, InvalidExpertBufferError
from condense.real_data import RealData
from condense.real_embedding import native_bf16
from condense.serialization import write_npz_atomic
from condense.synthetic_set import SyntheticSet

# Tiny and fast: an MLP, no augmentation, no progress bar.
FAST = {"model": "mlp", "dsa": False, "show_progress": False}


def tiny(n_per_class: int = 10, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n_per_class * classes, 1, 8, 8, generator=g), torch.arange(classes).repeat_interleave(n_per_class)


def small_set(**meta) -> SyntheticSet:
    return SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), 2, meta=meta)


def write_zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# ------------------------------------------------------------- 1: reproducibility
def test_repeated_runs_in_one_process_are_identical():
    from condense import features

    features._CACHE.clear()  # the first call must train the feature network, the second read the cache
    data = tiny()
    a = condense(data, method="dm", ipc=2, steps=3, init="herding", seed=0, **FAST)
    b = condense(data, method="dm", ipc=2, steps=3, init="herding", seed=0, **FAST)
    assert torch.equal(a.images, b.images)


# ------------------------------------------------------------- 2: hostile set files
def test_set_file_with_a_non_npy_member_is_refused_by_name(tmp_path):
    path = tmp_path / "junk.npz"
    write_zip(path, {"junk.txt": b"x"})
    with pytest.raises(InvalidSyntheticSetError, match="unexpected key 'junk.txt'"):
        SyntheticSet.load(path)


def test_set_file_members_are_checked_before_any_array_is_read(tmp_path, monkeypatch):
    path = small_set().save(tmp_path / "ok.npz")
    with zipfile.ZipFile(path, "a") as z:
        for i in range(50):
            z.writestr(f"extra_{i}.npy", npy_bytes(np.zeros(10)))
    reads = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: reads.append(key) or real_getitem(self, key))
    with pytest.raises(InvalidSyntheticSetError, match="unexpected key 'extra_0.npy'"):
        SyntheticSet.load(path)
    assert reads == []


def test_set_file_total_declared_size_is_capped(tmp_path, monkeypatch):
    import condense.synthetic_set as synthetic_set

    # Each array is under the limit, together they are over it.
    syn = SyntheticSet(torch.zeros(3, 1, 5, 10), torch.tensor([0, 1, 2]), 50, torch.zeros(3, 50))
    path = syn.save(tmp_path / "big.npz")
    monkeypatch.setattr(synthetic_set, "MAX_LOAD_BYTES", 1000)
    with pytest.raises(InvalidSyntheticSetError, match="over the 1000 limit"):
        SyntheticSet.load(path)


# ------------------------------------------------------------- 3: metadata the code relies on
@pytest.mark.parametrize(
    "meta, message",
    [
        ({"formation_factor": "abc"}, "formation_factor"),
        ({"formation_factor": 2.0}, "formation_factor"),
        ({"formation_factor": 0}, "positive integer"),
        ({"formation_factor": 16}, "at most 8"),
        ({"formation_factor": 3}, "does not divide"),
        ({"normalization": {"mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0]}}, "1 channel"),
        ({"normalization": {"mean": [0.1], "std": [0.0]}}, "positive"),
        ({"normalization": {"mean": "x", "std": [1.0]}}, "normalization"),
    ],
)
def test_bad_meta_is_refused(meta, message):
    with pytest.raises(InvalidSyntheticSetError, match=message):
        small_set(**meta)


def test_good_formation_factor_still_expands():
    x, y, _ = small_set(formation_factor=2, normalization={"mean": [0.5], "std": [0.25]}).training_tensors()
    assert x.shape == (8, 1, 8, 8) and y.tolist() == [0] * 4 + [1] * 4


def test_field_changed_after_construction_is_checked_before_training():
    syn = small_set()
    syn.formation_factor = "abc"
    with pytest.raises(InvalidSyntheticSetError, match="formation_factor"):
        syn.training_tensors()


@pytest.mark.parametrize("num_classes", [10**12, 2.5, "3"])
def test_absurd_num_classes_is_refused(num_classes):
    with pytest.raises(InvalidSyntheticSetError, match="num_classes"):
        SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), num_classes)


def test_loaded_file_with_bad_formation_factor_is_refused(tmp_path):
    path = small_set().save(tmp_path / "s.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["meta_json"]))
    header["meta"]["formation_factor"] = "abc"
    arrays["meta_json"] = np.array(json.dumps(header))
    write_npz_atomic(path, arrays)
    with pytest.raises(InvalidSyntheticSetError, match="formation_factor"):
        SyntheticSet.load(path)


# ------------------------------------------------------------- 4: k-center picks are distinct
def test_kcenter_picks_distinct_images_when_all_are_identical():
    x = torch.ones(10, 1, 8, 8)
    syn = condense((x, torch.zeros(10, dtype=torch.long)), method="kcenter", ipc=3, features="pixels", show_progress=False)
    picked = syn.meta["selected_indices"]
    assert len(set(picked)) == 3


# ------------------------------------------------------------- 5: hostile expert buffers
SHAPES_META = {"model": "mlp", "image_shape": [1, 8, 8], "num_classes": 3, "parameter_shapes": [["w", [2, 3]], ["b", [3]]]}


def expert_file(tmp_path, name="experts.npz"):
    traj = torch.full((2, 9), 1.2345)
    return ExpertBuffer([traj], dict(SHAPES_META)).save(tmp_path / name)


def test_expert_buffer_round_trips(tmp_path):
    back = ExpertBuffer.load(expert_file(tmp_path))
    assert back.shapes == [("w", (2, 3)), ("b", (3,))] and torch.allclose(back.trajectories[0], torch.tensor(1.2345))


def test_corrupted_expert_member_is_named(tmp_path):
    path = expert_file(tmp_path)
    raw = bytearray(path.read_bytes())
    at = raw.index(np.float32(1.2345).tobytes())
    raw[at] ^= 0xFF  # stored uncompressed: the member's CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidExpertBufferError, match="experts.npz"):
        ExpertBuffer.load(path)


@pytest.mark.parametrize("shapes", [5, [["w", 6]], [[1, [2]]], [["w", [-1]]]])
def test_malformed_parameter_shapes_are_refused(tmp_path, shapes):
    header = {"format_version": 1, **SHAPES_META, "parameter_shapes": shapes}
    path = tmp_path / "bad.npz"
    np.savez(path, trajectory_0000=np.zeros((2, 9), np.float32),
             meta_json=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    with pytest.raises(InvalidExpertBufferError, match="parameter_shapes"):
        ExpertBuffer.load(path)


def test_expert_size_cap_uses_the_npy_header(tmp_path, monkeypatch):
    import condense.experts as experts

    # The header declares 100,000 bytes; the member (and the zip directory) holds 40.
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (25_000,)})
    meta = np.frombuffer(json.dumps({"format_version": 1, **SHAPES_META}).encode(), dtype=np.uint8)
    path = tmp_path / "lying.npz"
    write_zip(path, {"trajectory_0000.npy": buf.getvalue() + b"\0" * 40, "meta_json.npy": npy_bytes(meta)})
    monkeypatch.setattr(experts, "MAX_LOAD_BYTES", 10_000)
    with pytest.raises(InvalidExpertBufferError, match="more than the 10000 allowed"):
        ExpertBuffer.load(path)


# ------------------------------------------------------------- 6, 8: parameter checks
@pytest.mark.parametrize(
    "params, name",
    [
        ({"batch_real": 0}, "batch_real"),
        ({"batch_real": -5}, "batch_real"),
        ({"batch_real": 2.5}, "batch_real"),
        ({"steps": 1.5}, "steps"),
        ({"steps": -1}, "steps"),
        ({"ipc": 2.0}, "ipc"),
        ({"ipc": 0}, "ipc"),
    ],
)
def test_bad_loop_parameters_are_named(params, name):
    args = {"ipc": 2, "steps": 1, **params}
    with pytest.raises(InvalidParameterError, match=name):
        condense(tiny(), method="dm", **args, **FAST)


def test_dc_with_zero_batch_real_is_refused_not_a_no_op():
    with pytest.raises(InvalidParameterError, match="batch_real"):
        condense(tiny(), method="dc", ipc=1, steps=1, batch_real=0, **FAST)


def test_balanced_batch_refuses_non_positive_counts():
    real = RealData.prepare(TensorData(*tiny(), num_classes=3))
    with pytest.raises(InvalidParameterError, match="per_class"):
        real.balanced_batch(-5)


def test_zero_steps_still_returns_the_initial_images():
    syn = condense(tiny(), method="dm", ipc=2, steps=0, **FAST)
    assert syn.meta["steps_run"] == 0 and len(syn) == 6


def test_evaluate_refuses_zero_models():
    syn = small_set()
    with pytest.raises(InvalidParameterError, match="models"):
        evaluate(syn, tiny(classes=2), models=0, epochs=1, model="mlp", dsa=False, show_progress=False)


@pytest.mark.parametrize("shape", [(3, 0, 8, 8), (3, 1, 0, 8), (3, 1, 8, 0)])
def test_empty_image_dimensions_are_refused(shape):
    with pytest.raises(InvalidSyntheticSetError, match="non-zero"):
        SyntheticSet(torch.zeros(shape), torch.tensor([0, 1, 0]), 2)
    with pytest.raises(InvalidDataError, match="non-zero"):
        TensorData(torch.zeros(shape), torch.tensor([0, 1, 0]), 2)


def test_float_labels_are_refused_not_truncated():
    with pytest.raises(InvalidSyntheticSetError, match="labels must be integers"):
        SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0.9, 1.7]), 2)


# ------------------------------------------------------------- 7: callback snapshots
def test_callback_snapshots_are_copies():
    snaps: list[torch.Tensor] = []
    syn = condense(tiny(), method="dm", ipc=2, steps=3, lr_img=10.0, callback=lambda s, x, y: snaps.append(x), **FAST)
    assert len(snaps) == 3
    assert not torch.equal(snaps[0], snaps[1]) and not torch.equal(snaps[1], snaps[2])
    assert torch.equal(snaps[-1], syn.images)


# ------------------------------------------------------------- 9: resolved amp recorded
@pytest.mark.parametrize("amp, expected", [("auto", "bf16" if native_bf16("cpu") else None), (None, None), ("bf16", "bf16")])
def test_resolved_amp_is_recorded(amp, expected):
    syn = condense(tiny(), method="dm", ipc=1, steps=1, amp=amp, **FAST)
    assert syn.meta["hyperparameters"]["amp"] == amp
    assert syn.meta["amp_resolved"] == expected


def test_coreset_records_whether_features_ran_in_bf16():
    assert condense(tiny(), method="herding", ipc=1, features="pixels", show_progress=False).meta["features_bf16"] is False
    random_feats = condense(tiny(), method="herding", ipc=1, features="random", show_progress=False)
    assert random_feats.meta["features_bf16"] is native_bf16("cpu")


# ------------------------------------------------------------- 10: archives and the array cache
@pytest.fixture()
def python_without_tar_filters(monkeypatch):
    """Python 3.11.0-3.11.3: no tarfile.data_filter, and extractall takes no ``filter``."""
    monkeypatch.delattr(tarfile, "data_filter")
    real_extractall = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False):
        return real_extractall(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)


def make_tar(path, add) -> None:
    with tarfile.open(path, "w") as tar:
        add(tar)


def file_member(tar: tarfile.TarFile, name: str, data: bytes = b"x", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def test_archive_extracts_without_tar_filters(tmp_path, python_without_tar_filters):
    archive = tmp_path / "ok.tar"
    make_tar(archive, lambda t: file_member(t, "set/train/a/0.txt", b"hello", mode=0o4777))
    out = image_folder.extract_archive(archive)
    extracted = out / "set" / "train" / "a" / "0.txt"
    assert extracted.read_bytes() == b"hello"
    assert extracted.stat().st_mode & 0o4022 == 0  # no setuid, not group/world-writable


def symlink(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("set/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def device(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("set/dev")
    info.type = tarfile.CHRTYPE
    tar.addfile(info)


@pytest.mark.parametrize(
    "add, message",
    [
        (lambda t: file_member(t, "../escaped.txt"), "outside"),
        (lambda t: file_member(t, "/tmp/condense_abs_escape.txt"), "outside"),
        (symlink, "link or special"),
        (device, "link or special"),
    ],
)
def test_hostile_archive_refused_without_tar_filters(tmp_path, python_without_tar_filters, add, message):
    archive = tmp_path / "evil" / "evil.tar"
    archive.parent.mkdir()
    make_tar(archive, add)
    with pytest.raises(InvalidDataError, match=message):
        image_folder.extract_archive(archive)
    assert not (tmp_path / "escaped.txt").exists()
    assert not list((image_folder.cache_dir() / "extracted").glob(".*.*/"))  # the temporary folder is removed


def test_corrupt_array_cache_is_rebuilt(tmp_path):
    cached = tmp_path / "arrays.npz"
    write_npz_atomic(cached, {"x": np.full(64, 7, np.uint8), "y": np.zeros(4, np.int64)}, compressed=False)
    raw = bytearray(cached.read_bytes())
    raw[raw.index(bytes([7] * 64))] = 8  # bad CRC: zipfile raises BadZipFile when the member is read
    cached.write_bytes(bytes(raw))
    assert image_folder._read_cached(cached) is None
    assert not cached.exists()


# ------------------------------------------------------------- 11: docstrings
def test_public_methods_have_docstrings():
    from condense.evaluation import EvaluationResult
    from condense.methods.base import Condenser
    from condense.normalization import Normalization

    named = [
        SyntheticSet.class_counts, SyntheticSet.has_soft_labels, TensorData.subset, TensorData.class_counts,
        TensorData.classes_present, TensorData.image_shape, EvaluationResult.mean, EvaluationResult.std,
        EvaluationResult.models, EvaluationResult.to_json, Condenser.set_params, Normalization.from_data,
        Normalization.from_meta, Normalization.to_meta, Normalization.apply,
    ]
    missing = [getattr(f, "fget", f).__qualname__ for f in named if not (getattr(f, "__doc__", None) or "").strip()]
    assert missing == []
