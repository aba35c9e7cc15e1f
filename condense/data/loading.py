"""One entry point that turns a dataset name or path into train/test splits."""

from __future__ import annotations

import os
from pathlib import Path

from condense.data.digits import load_digits_splits
from condense.data.image_folder import is_archive, load_image_folder_splits
from condense.data.npz_files import load_npz_splits
from condense.data.tensor_data import TensorData
from condense.data.torchvision_sets import TORCHVISION_NAMES, load_torchvision_splits
from condense.errors import InvalidDataError

DATASET_NAMES = ("digits", *TORCHVISION_NAMES)


def load_dataset(
    spec: str | os.PathLike, root: str | os.PathLike | None = None, download: bool = False
) -> tuple[TensorData, TensorData]:
    """Return ``(train, test)`` for a dataset name or a path.

    ``spec`` is one of :data:`DATASET_NAMES` or a path to an ``.npz`` file
    (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``), an image folder
    (``train/<class>/``, ``test/<class>/``) or a ``.tar.gz`` of one.

    For a name other than ``digits``, ``root`` (or ``$CONDENSE_DATA``) is a
    folder holding either ``<name>.npz``, ``<name>_jpg.tar.gz``, a ``<name>/``
    image folder, or torchvision's own files. Nothing is downloaded unless
    ``download=True``.
    """
    text = str(spec)
    if text == "digits":
        return load_digits_splits()
    path = Path(text).expanduser()
    if path.exists():
        return _check_first_class(*_load_path(path))
    key = text.lower().replace("_", "-")
    if key not in TORCHVISION_NAMES:
        raise InvalidDataError(
            f"unknown dataset '{text}': not a file or folder, and not one of {', '.join(DATASET_NAMES)}"
        )
    root = root if root is not None else os.environ.get("CONDENSE_DATA")
    if root is None:
        raise InvalidDataError(f"dataset '{text}' needs --root (a folder with its files) or $CONDENSE_DATA")
    root = Path(root).expanduser()
    plain = key.replace("-", "")
    for candidate in (root / f"{key}.npz", root / f"{plain}.npz"):
        if candidate.is_file():
            return _check_first_class(*load_npz_splits(candidate, name=key))
    for candidate in (root / f"{plain}_jpg.tar.gz", root / f"{key}.tar.gz", root / key, root / plain):
        if candidate.exists() and (is_archive(candidate) or (candidate / "train").is_dir()):
            return load_image_folder_splits(candidate, name=key)
    return load_torchvision_splits(key, root, download=download)


def _load_path(path: Path) -> tuple[TensorData, TensorData]:
    if path.is_file() and path.suffix == ".npz":
        return load_npz_splits(path)
    if is_archive(path) or path.is_dir():
        return load_image_folder_splits(path)
    raise InvalidDataError(f"{path}: expected an .npz file, an image folder or a .tar.gz of one")


def _check_first_class(train: TensorData, test: TensorData) -> tuple[TensorData, TensorData]:
    """Refuse a file whose labels start at 1: it would silently get an empty class 0 (and one class too many)."""
    if train.class_counts()[0] == 0:
        present = train.classes_present()
        raise InvalidDataError(
            f"{train.name}: no training image has label 0 (labels found: {present[0]}..{present[-1]}); "
            "labels must be 0..K-1: subtract 1 from one-based labels"
        )
    return train, test
