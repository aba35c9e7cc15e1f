"""Writing results without pickle: atomic ``.npz`` files and JSON-safe metadata,
and reading ``.npy`` headers of untrusted ``.npz`` files before their data."""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], compressed: bool = True) -> Path:
    """Write ``arrays`` to ``path`` through a temporary file and a rename, so a
    failure (full disk, interruption) leaves any previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
        # mkstemp makes the file private (0600); a result should get the permissions any new file gets
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Keep the values JSON can hold; replace the rest (callbacks, modules) by their type name."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            json.dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = None if value is None else type(value).__name__
    return out


def npy_member_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, nbytes)`` declared by the ``.npy`` header of ``member``, reading only the header.

    What loading the array would allocate, known before allocating it (the zip
    directory's sizes are not: a hostile file may state anything there).
    Raises ``ValueError`` for an unsupported or malformed header.
    """
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("it holds Python objects (pickle)")
    # Python ints: a hostile shape must not wrap around int64 into a small size.
    return tuple(shape), dtype, math.prod(int(d) for d in shape) * dtype.itemsize
