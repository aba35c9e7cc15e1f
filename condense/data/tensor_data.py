"""In-memory labelled images: the one data type every method reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from condense.errors import InvalidDataError


@dataclass
class TensorData:
    """Labelled images held as tensors.

    Attributes:
        x: ``(N, C, H, W)`` float32 pixels, usually in ``[0, 1]``.
        y: ``(N,)`` int64 labels in ``0 .. num_classes - 1``.
        num_classes: number of classes of the task (may exceed the labels present).
        class_names: optional names, one per class.
        name: where the data came from (for messages and metadata).
    """

    x: torch.Tensor = field(repr=False)
    y: torch.Tensor = field(repr=False)
    num_classes: int
    class_names: list[str] | None = None
    name: str = "data"
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.x = images_to_nchw(self.x, self.name)
        self.y = labels_to_tensor(self.y, self.name)
        self.num_classes = int(self.num_classes)
        self.validate()

    def validate(self) -> "TensorData":
        """Raise :class:`InvalidDataError` naming the first problem found."""
        if self.x.shape[0] == 0:
            raise InvalidDataError(f"{self.name}: the data is empty (0 samples)")
        if 0 in self.x.shape[1:]:
            raise InvalidDataError(
                f"{self.name}: images must have non-zero channels, height and width, got shape {tuple(self.x.shape)}"
            )
        if self.y.shape[0] != self.x.shape[0]:
            raise InvalidDataError(
                f"{self.name}: {self.x.shape[0]} images but {self.y.shape[0]} labels"
            )
        if not torch.isfinite(self.x).all():
            raise InvalidDataError(f"{self.name}: images contain NaN or infinite values")
        lo, hi = int(self.y.min()), int(self.y.max())
        if lo < 0 or hi >= self.num_classes:
            raise InvalidDataError(
                f"{self.name}: labels must lie in 0..{self.num_classes - 1}, found values in {lo}..{hi}"
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise InvalidDataError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes"
            )
        return self

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> list[int]:
        """Number of samples of each class, ``num_classes`` entries (absent classes count 0)."""
        return torch.bincount(self.y, minlength=self.num_classes).tolist()

    def classes_present(self) -> list[int]:
        """The labels that occur at least once, in increasing order."""
        return torch.unique(self.y).tolist()

    def subset(self, index: torch.Tensor) -> "TensorData":
        """A new dataset of the rows in ``index`` (same classes and name)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return TensorData(self.x[index], self.y[index], self.num_classes, self.class_names, self.name)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the pixels (the normalization recorded in meta)."""
        flat = self.x.transpose(0, 1).reshape(self.x.shape[1], -1).double()
        mean = flat.mean(1)
        std = flat.std(1).clamp_min(1e-6)
        return mean.tolist(), std.tolist()

    def fingerprint(self) -> str:
        """A short SHA-256 of images and labels, to tie a synthetic set to its source."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(str(tuple(self.x.shape)).encode())
            h.update(self.x.numpy().tobytes())
            h.update(self.y.numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def images_to_nchw(x: object, name: str = "data") -> torch.Tensor:
    """Turn NHW, NHWC or NCHW arrays (uint8 or float) into float32 NCHW tensors.

    uint8 pixels are scaled to ``[0, 1]``; float pixels are kept as they are.
    A 4-D array is read as NHWC when its last axis has 1, 3 or 4 entries and its
    second does not.
    """
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise InvalidDataError(f"{name}: images are Python objects, expected a numeric array")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise InvalidDataError(f"{name}: images must be a tensor or numpy array, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise InvalidDataError(f"{name}: images have unsupported dtype {x.dtype}")
    scale = x.dtype == torch.uint8
    x = x.detach().to("cpu")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.permute(0, 3, 1, 2)
    else:
        raise InvalidDataError(
            f"{name}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W), got {tuple(x.shape)}"
        )
    x = x.float()
    if scale:
        x = x / 255.0
    return x.contiguous()


def labels_to_tensor(y: object, name: str = "data") -> torch.Tensor:
    """Integer class labels as a 1-D int64 tensor."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(y, np.ndarray):
        if not np.issubdtype(y.dtype, np.integer):
            raise InvalidDataError(f"{name}: labels must be integers, got dtype {y.dtype}")
        y = torch.from_numpy(y.astype(np.int64))
    if not isinstance(y, torch.Tensor):
        raise InvalidDataError(f"{name}: labels must be a tensor or array, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise InvalidDataError(f"{name}: labels must be integers, got dtype {y.dtype}")
    if y.dim() != 1:
        raise InvalidDataError(f"{name}: labels must be 1-D, got shape {tuple(y.shape)}")
    return y.detach().to("cpu", torch.long).contiguous()
