"""Image folders in torchvision's ImageFolder layout, decoded once and cached as arrays.

Layout: ``ROOT/train/<class>/*.{png,jpg,...}`` and ``ROOT/test/<class>/*``; the
class index is the position of the folder name in sorted order. ``ROOT`` may
also be a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of that layout (with or
without one top folder); it is extracted once into the cache directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np

from condense.data.cache_lock import cache_lock
from condense.data.tensor_data import TensorData
from condense.errors import InvalidDataError
from condense.serialization import write_npz_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def cache_dir() -> Path:
    """Where decoded arrays and extracted archives live (``$CONDENSE_CACHE`` or ``~/.cache/condense``)."""
    return Path(os.environ.get("CONDENSE_CACHE", Path.home() / ".cache" / "condense"))


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def load_image_folder_splits(root: str | Path, name: str | None = None) -> tuple[TensorData, TensorData]:
    """Load ``train/`` and ``test/`` of an image folder (or archive), using the array cache."""
    root = Path(root)
    if is_archive(root):
        root = extract_archive(root)
    root = _find_split_root(root)
    name = name or root.name
    train_dir, test_dir = root / "train", root / "test"
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise InvalidDataError(f"{train_dir}: no class folders")
    train = _load_split(train_dir, classes, f"{name}/train")
    test = _load_split(test_dir, classes, f"{name}/test")
    return train, test


def extract_archive(archive: Path) -> Path:
    """Extract once into the cache; members escaping the target or not plain files are refused.

    Processes that ask at the same time wait for the first one's extraction
    instead of extracting again (and a complete extraction is never replaced).
    """
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "extracted" / key
    done = target / ".complete"
    if done.exists():
        return target
    with cache_lock(target.parent / f".{key}.lock"):
        if done.exists():  # another process finished while this one waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
        try:
            with tarfile.open(archive) as tar:
                _extract_safely(tar, tmp, archive)
            (tmp / ".complete").touch()
            if target.exists():  # a half-finished attempt that did not end in the rename
                shutil.rmtree(target)
            os.replace(tmp, target)
        except InvalidDataError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InvalidDataError(f"{archive}: cannot extract archive ({exc})") from exc
    return target


def _extract_safely(tar: tarfile.TarFile, dest: Path, archive: Path) -> None:
    """Extract ``tar`` into ``dest``; members that could escape it, links and special files are refused."""
    if hasattr(tarfile, "data_filter"):  # extraction filters: Python >= 3.11.4
        tar.extractall(dest, filter="data")
        return
    # pyproject allows 3.11.0-3.11.3, which lack filters: check what the "data" filter would.
    root = os.path.realpath(dest)
    members = []
    for member in tar.getmembers():
        name = member.name
        if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise InvalidDataError(f"{archive}: cannot extract archive (member {name!r} would land outside the target folder)")
        if os.path.commonpath([root, os.path.realpath(os.path.join(root, name))]) != root:
            raise InvalidDataError(f"{archive}: cannot extract archive (member {name!r} would land outside the target folder)")
        if not (member.isfile() or member.isdir()):
            raise InvalidDataError(f"{archive}: cannot extract archive (member {name!r} is a link or special file; only files and folders are allowed)")
        # As the "data" filter: no setuid/setgid/world-writable bits, and no owner taken from the archive.
        member.mode = 0o755 if member.isdir() else (member.mode & 0o755) | 0o600
        if hasattr(os, "getuid"):
            member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        members.append(member)
    tar.extractall(dest, members=members)


def _find_split_root(root: Path) -> Path:
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    if len(subdirs) == 1 and (subdirs[0] / "train").is_dir() and (subdirs[0] / "test").is_dir():
        return subdirs[0]
    raise InvalidDataError(f"{root}: expected an image folder with train/<class>/ and test/<class>/ subfolders")


def _load_split(split_dir: Path, classes: list[str], name: str) -> TensorData:
    if not split_dir.is_dir():
        raise InvalidDataError(f"{split_dir}: missing split folder")
    files: list[tuple[Path, int]] = []
    for idx, cls in enumerate(classes):
        cdir = split_dir / cls
        if cdir.is_dir():
            files += [(p, idx) for p in sorted(cdir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InvalidDataError(f"{split_dir}: no images found")
    h = hashlib.sha256()
    for p, idx in files:
        st = p.stat()
        h.update(f"{p.relative_to(split_dir)}|{idx}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cached = cache_dir() / "arrays" / f"{h.hexdigest()[:20]}.npz"
    loaded = _read_cached(cached)
    if loaded is None:
        with cache_lock(cached.with_name(f".{cached.stem}.lock")):
            loaded = _read_cached(cached)  # decoded by another process while this one waited?
            if loaded is None:
                loaded = _decode(files, split_dir)
                write_npz_atomic(cached, {"x": loaded[0], "y": loaded[1]}, compressed=False)
    return TensorData(loaded[0], loaded[1], len(classes), classes, name)


def _read_cached(cached: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or None when there are none (a corrupt cache file is removed)."""
    if not cached.exists():
        return None
    try:
        with np.load(cached, allow_pickle=False) as npz:
            return npz["x"], npz["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        # A truncated or corrupted file (BadZipFile: bad CRC, cut directory) is rebuilt, not fatal.
        cached.unlink(missing_ok=True)
        return None


def _decode(files: list[tuple[Path, int]], split_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    def read(item: tuple[Path, int]) -> np.ndarray:
        path = item[0]
        try:
            with Image.open(path) as img:
                mode = "L" if img.mode in ("L", "1", "I;16", "I") else "RGB"
                return np.asarray(img.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidDataError(f"{path}: cannot decode image ({exc})") from exc

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        images = list(pool.map(read, files, chunksize=256))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InvalidDataError(f"{split_dir}: images have different sizes/modes {sorted(shapes)[:3]}; resize them first")
    x = np.stack(images)
    y = np.array([idx for _, idx in files], dtype=np.int64)
    return x, y
