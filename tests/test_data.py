"""Data adapters: shapes, dtypes, npz files, image folders and archives, bad input."""

from __future__ import annotations

import os
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from condense import InsufficientSamplesError, InvalidDataError, as_tensor_data, condense, load_dataset
from condense.data import image_folder


def test_layouts_and_uint8_scaling():
    nhw = np.full((4, 6, 6), 255, dtype=np.uint8)
    nhwc = np.zeros((4, 6, 6, 3), dtype=np.uint8)
    nchw = torch.zeros(4, 3, 6, 6)
    y = np.array([0, 1, 0, 1])
    assert as_tensor_data((nhw, y)).x.shape == (4, 1, 6, 6)
    assert float(as_tensor_data((nhw, y)).x.max()) == 1.0  # uint8 scaled to [0, 1]
    assert as_tensor_data((nhwc, y)).x.shape == (4, 3, 6, 6)
    assert as_tensor_data((nchw, y)).x.shape == (4, 3, 6, 6)
    assert as_tensor_data((nchw, y)).num_classes == 2


def test_torch_dataset_adapter_matches_tensors():
    x, y = torch.rand(10, 1, 5, 5), torch.arange(10) % 2
    via_ds = as_tensor_data(TensorDataset(x, y))
    assert torch.equal(via_ds.x, x) and torch.equal(via_ds.y, y)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long), "empty"),
        (torch.full((2, 1, 4, 4), float("nan")), torch.tensor([0, 1]), "NaN"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0.0, 1.0]), "integers"),
        (torch.zeros(2, 4), torch.tensor([0, 1]), "shape"),
        (torch.zeros(3, 1, 4, 4), torch.tensor([0, 1]), "3 images but 2 labels"),
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, -1]), ">= 0"),
    ],
)
def test_bad_input_is_named(x, y, message):
    with pytest.raises(InvalidDataError, match=message):
        as_tensor_data((x, y))


def test_labels_out_of_declared_range():
    with pytest.raises(InvalidDataError, match="labels must lie in 0..1"):
        as_tensor_data((torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2])), num_classes=2)


def test_class_smaller_than_ipc_is_named(tiny_data):
    x, y = tiny_data
    keep = torch.cat([torch.arange(0, 40), torch.arange(40, 43)])  # class 2 keeps 3 samples
    with pytest.raises(InsufficientSamplesError, match="class 2 has 3"):
        condense((x[keep], y[keep]), method="random", ipc=5)


def test_single_class_is_condensed_on_its_own(tiny_data):
    x, y = tiny_data
    syn = condense((x[:20], y[:20]), method="random", ipc=4, num_classes=3)
    assert syn.class_counts() == [4, 0, 0] and syn.num_classes == 3


def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_npz_splits_and_refusals(tmp_path):
    good = dict(x_train=np.zeros((6, 5, 5), np.uint8), y_train=np.array([0, 1, 2, 0, 1, 2]),
                x_test=np.zeros((3, 5, 5), np.uint8), y_test=np.array([0, 1, 2]))
    _write_npz(tmp_path / "ok.npz", **good)
    train, test = load_dataset(tmp_path / "ok.npz")
    assert train.x.shape == (6, 1, 5, 5) and test.num_classes == 3
    _write_npz(tmp_path / "missing.npz", **{k: v for k, v in good.items() if k != "y_test"})
    with pytest.raises(InvalidDataError, match="missing key"):
        load_dataset(tmp_path / "missing.npz")
    _write_npz(tmp_path / "pickled.npz", **{**good, "y_train": np.array([object()] * 6, dtype=object)})
    with pytest.raises(InvalidDataError, match="pickled"):
        load_dataset(tmp_path / "pickled.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidDataError, match="not a readable"):
        load_dataset(tmp_path / "corrupt.npz")


def test_unknown_names_and_missing_root():
    with pytest.raises(InvalidDataError, match="unknown dataset"):
        load_dataset("imagenet-but-not-really")
    with pytest.raises(InvalidDataError, match="needs --root"):
        os.environ.pop("CONDENSE_DATA", None)
        load_dataset("mnist")


def make_image_folder(root, size=6, per_class=3, classes=("cat", "dog")):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_image_folder_is_decoded_once_then_cached(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs")
    train, test = load_dataset(root)
    assert train.x.shape == (6, 3, 6, 6) and train.class_names == ["cat", "dog"]
    assert train.class_counts() == [3, 3]

    def no_decoding(*a, **k):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(image_folder, "_decode", no_decoding)
    again, _ = load_dataset(root)
    assert torch.equal(again.x, train.x)


def test_archive_extracted_and_hostile_members_refused(tmp_path):
    root = make_image_folder(tmp_path / "set")
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="set")
    train, _ = load_dataset(archive)
    assert len(train) == 6
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "payload.txt").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "payload.txt", arcname="../../escaped.txt")
    with pytest.raises(InvalidDataError, match="cannot extract"):
        load_dataset(evil)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_simultaneous_loads_of_one_archive_extract_it_once(tmp_path, monkeypatch):
    # a federated run's server and clients load the same archive at the same moment
    import threading

    root = make_image_folder(tmp_path / "shared", per_class=20)
    archive = tmp_path / "shared.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="shared")
    opened, real_open = [], tarfile.open

    def counting_open(*a, **k):
        opened.append(1)
        return real_open(*a, **k)

    monkeypatch.setattr(image_folder.tarfile, "open", counting_open)
    start, results, errors = threading.Barrier(4), [], []

    def load() -> None:
        start.wait()
        try:
            results.append(len(load_dataset(archive)[0]))
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == [40] * 4
    assert len(opened) == 1


def test_mixed_image_sizes_are_refused(tmp_path):
    from PIL import Image

    root = make_image_folder(tmp_path / "mixed")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "cat" / "odd.png")
    with pytest.raises(InvalidDataError, match="different sizes"):
        load_dataset(root)


def test_digits_split_is_fixed(digits):
    train, test = digits
    assert (len(train), len(test)) == (1257, 540)
    assert train.image_shape == (1, 8, 8) and float(train.x.max()) <= 1.0


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist.npz")),
                    reason="shared MNIST (../shared/data/mnist.npz) not present")
def test_shared_mnist_by_name():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    train, test = load_dataset("mnist", root=root)
    assert (len(train), len(test)) == (60000, 10000) and train.image_shape == (1, 28, 28)
