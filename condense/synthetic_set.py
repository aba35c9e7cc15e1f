"""The one output type of every method: a small labelled image set plus metadata."""

from __future__ import annotations

import json
import math
import operator
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condense.errors import InvalidSyntheticSetError
from condense.formation import MAX_FORMATION_FACTOR, check_factor
from condense.learned_step_size import LearnedStepSize
from condense.normalization import Normalization
from condense.privacy_record import PrivacyRecord
from condense.serialization import npy_member_header, write_npz_atomic

# 2: behaviour-driving facts are typed fields (header "fields"); 1 kept them in meta (still read).
FORMAT_VERSION = 2
# meta keys of format 1 that now live in typed fields (moved there on construction).
_LEGACY_META = ("formation_factor", "normalization", "syn_lr")
# Arrays a synthetic-set file may hold; anything else is refused.
_REQUIRED_KEYS = {"images", "labels", "meta_json"}
_OPTIONAL_KEYS = {"soft_labels"}
# A class count from a file sizes one-hot tensors and classifier heads: bound it.
MAX_NUM_CLASSES = 100_000
# Refuse files whose arrays together would take more than this in memory (hostile headers).
MAX_LOAD_BYTES = 4 * 1024**3


@dataclass
class SyntheticSet:
    """A condensed (or selected) training set.

    Behaviour (training, evaluation, buffers, payloads) reads the typed fields,
    never ``meta``. A ``meta`` that still holds the format-1 keys
    ``formation_factor``, ``normalization`` or ``syn_lr`` (files and code of
    the previous version) has them moved into the typed fields; a key that
    contradicts a typed field given alongside it is refused.

    Attributes:
        images: ``(N, C, H, W)`` float32 tensor, in the *normalized* space of
            the source data (``normalization``).
        labels: ``(N,)`` int64 hard labels in ``0 .. num_classes - 1``.
        num_classes: number of classes of the source task.
        soft_labels: optional ``(N, num_classes)`` float32 logits learned
            by the method; training uses them when present.
        meta: JSON-serialisable provenance: method, hyperparameters, ipc, seed,
            source fingerprint, timings.
        formation_factor: each stored image packs ``factor x factor`` tiles
            (IDM); training expands them. Must divide H and W.
        learned_lr: the student step size learned with the set, and for which network.
        normalization: the per-channel normalization the images live in (``None``: pixel space).
        privacy: the differential-privacy record of the run that made the set (``None``: no claim).
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    soft_labels: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    formation_factor: int = 1
    learned_lr: LearnedStepSize | None = None
    normalization: Normalization | None = None
    privacy: PrivacyRecord | None = None

    def __post_init__(self) -> None:
        self._adopt_legacy_meta()
        self.images = torch.as_tensor(self.images).detach().to("cpu", torch.float32).contiguous()
        labels = torch.as_tensor(self.labels).detach()
        # .long() would silently truncate float labels (0.9 -> 0); an empty list is float32, let validate name it.
        if labels.numel() and (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool):
            raise InvalidSyntheticSetError(f"labels must be integers, got dtype {labels.dtype}")
        self.labels = labels.to("cpu").long().contiguous()
        if self.soft_labels is not None:
            self.soft_labels = torch.as_tensor(self.soft_labels).detach().to("cpu", torch.float32).contiguous()
        try:  # int() would truncate 2.5 and parse "3"; index() takes only integers (also 0-d int tensors)
            if isinstance(self.num_classes, bool):
                raise TypeError
            self.num_classes = operator.index(self.num_classes)
        except TypeError:
            raise InvalidSyntheticSetError(f"num_classes must be an integer, got {self.num_classes!r}") from None
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> "SyntheticSet":
        """Raise :class:`InvalidSyntheticSetError` naming the first problem found."""
        x, y = self.images, self.labels
        if x.dim() != 4:
            raise InvalidSyntheticSetError(f"images must have rank 4 (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InvalidSyntheticSetError("synthetic set is empty (0 images)")
        if 0 in x.shape[1:]:
            raise InvalidSyntheticSetError(f"images must have non-zero channels, height and width, got shape {tuple(x.shape)}")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise InvalidSyntheticSetError(
                f"labels must have shape ({x.shape[0]},) to match the images, got {tuple(y.shape)}"
            )
        if not 1 <= self.num_classes <= MAX_NUM_CLASSES:
            raise InvalidSyntheticSetError(f"num_classes must lie in 1..{MAX_NUM_CLASSES}, got {self.num_classes}")
        if not torch.isfinite(x).all():
            raise InvalidSyntheticSetError("images contain NaN or infinite values")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= self.num_classes:
            raise InvalidSyntheticSetError(
                f"labels must lie in 0..{self.num_classes - 1}, found values in {lo}..{hi}"
            )
        if self.soft_labels is not None:
            s = self.soft_labels
            if tuple(s.shape) != (x.shape[0], self.num_classes):
                raise InvalidSyntheticSetError(
                    f"soft_labels must have shape ({x.shape[0]}, {self.num_classes}), got {tuple(s.shape)}"
                )
            if not torch.isfinite(s).all():
                raise InvalidSyntheticSetError("soft_labels contain NaN or infinite values")
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as exc:
            raise InvalidSyntheticSetError(f"meta is not JSON-serialisable: {exc}") from exc
        self._validate_meta()
        return self

    def _adopt_legacy_meta(self) -> None:
        """Move format-1 meta keys into the typed fields (refusing contradictions); ``meta`` is copied."""
        if not isinstance(self.meta, dict):
            raise InvalidSyntheticSetError(f"meta must be a dict, got {type(self.meta).__name__}")
        if not any(k in self.meta for k in _LEGACY_META):
            return
        meta = dict(self.meta)
        if "formation_factor" in meta:
            factor = meta.pop("formation_factor")
            _check_factor_type(factor, "meta['formation_factor']")
            if self.formation_factor not in (1, factor):
                raise InvalidSyntheticSetError(
                    f"meta['formation_factor'] {factor} contradicts formation_factor {self.formation_factor}"
                )
            self.formation_factor = factor
        if "normalization" in meta:
            norm = _normalization_from_meta(meta.pop("normalization"))
            if norm is not None and self.normalization is not None and norm != self.normalization:
                raise InvalidSyntheticSetError(f"meta['normalization'] contradicts normalization {self.normalization}")
            self.normalization = self.normalization or norm
        if "syn_lr" in meta:
            value = meta.pop("syn_lr")
            params = meta.get("hyperparameters") if isinstance(meta.get("hyperparameters"), dict) else {}
            model = params.get("model") if isinstance(params.get("model"), str) else None
            kwargs = params.get("model_kwargs") if isinstance(params.get("model_kwargs"), dict) else {}
            lr = LearnedStepSize(value, model, kwargs)
            if self.learned_lr is not None and self.learned_lr != lr:
                raise InvalidSyntheticSetError(f"meta['syn_lr'] {value!r} contradicts learned_lr {self.learned_lr}")
            self.learned_lr = lr
        self.meta = meta

    def _validate_meta(self) -> None:
        """The typed fields that training and evaluation read (a loaded file, or a caller, may hold anything)."""
        if not isinstance(self.meta, dict):
            raise InvalidSyntheticSetError(f"meta must be a dict, got {type(self.meta).__name__}")
        c, h, w = self.image_shape
        _check_factor_type(self.formation_factor, "formation_factor")
        check_factor((h, w), self.formation_factor)  # in 1..MAX_FORMATION_FACTOR and dividing H and W
        norm = self.normalization
        if norm is not None:
            if not isinstance(norm, Normalization):
                raise InvalidSyntheticSetError(f"normalization must be a Normalization, got {type(norm).__name__}")
            for key in ("mean", "std"):
                values = getattr(norm, key)
                if len(values) != c:
                    raise InvalidSyntheticSetError(f"normalization {key} has {len(values)} entries, the images {c} channel(s)")
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                    raise InvalidSyntheticSetError(f"normalization {key} must hold finite numbers")
            if not all(v > 0 for v in norm.std):
                raise InvalidSyntheticSetError("normalization std must be positive")
        if self.learned_lr is not None and not isinstance(self.learned_lr, LearnedStepSize):
            raise InvalidSyntheticSetError(f"learned_lr must be a LearnedStepSize, got {type(self.learned_lr).__name__}")
        if self.privacy is not None:
            if not isinstance(self.privacy, PrivacyRecord):
                raise InvalidSyntheticSetError(f"privacy must be a PrivacyRecord, got {type(self.privacy).__name__}")
            self.privacy.validate()

    def typed_fields(self) -> dict[str, Any]:
        """The typed fields as JSON-ready values (what a file's header stores)."""
        return {
            "formation_factor": self.formation_factor,
            "learned_lr": None if self.learned_lr is None else self.learned_lr.to_dict(),
            "normalization": None if self.normalization is None else self.normalization.to_meta(),
            "privacy": None if self.privacy is None else self.privacy.to_dict(),
        }

    @staticmethod
    def fields_from_json(fields: Any) -> dict[str, Any]:
        """Keyword arguments for the typed fields from :meth:`typed_fields`'s JSON (checked)."""
        if not isinstance(fields, dict) or set(fields) - {"formation_factor", "learned_lr", "normalization", "privacy"}:
            raise InvalidSyntheticSetError(f"fields must be an object of the typed fields, got {fields!r:.120}")
        factor = fields.get("formation_factor", 1)
        _check_factor_type(factor, "formation_factor")
        lr, norm, privacy = fields.get("learned_lr"), fields.get("normalization"), fields.get("privacy")
        return {
            "formation_factor": factor,
            "learned_lr": None if lr is None else LearnedStepSize.from_dict(lr),
            "normalization": _normalization_from_meta(norm),
            "privacy": None if privacy is None else PrivacyRecord.from_dict(privacy),
        }

    # -------------------------------------------------------------- properties
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one stored image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def has_soft_labels(self) -> bool:
        """Whether the set carries learned soft labels (training then uses them)."""
        return self.soft_labels is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (images, labels, soft labels), what a buffer or payload costs."""
        n = self.images.numel() * 4 + self.labels.numel() * 8
        if self.soft_labels is not None:
            n += self.soft_labels.numel() * 4
        return n

    def class_counts(self) -> list[int]:
        """Number of images of each class, ``num_classes`` entries."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def training_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images, hard labels and soft labels as a model should be trained on them.

        Methods that store images in a compressed formation (see
        :mod:`condense.formation`) expand them here; plain sets return their arrays.
        """
        self._validate_meta()  # the fields are plain attributes: they may have changed since construction
        factor = self.formation_factor
        if factor == 1:
            return self.images, self.labels, self.soft_labels
        from condense.formation import expand_formation

        return expand_formation(self.images, self.labels, self.soft_labels, factor)

    def denormalized_images(self) -> torch.Tensor:
        """Images mapped back to pixel space ``[0, 1]`` (for display)."""
        norm = self.normalization
        if norm is None:
            return self.images.clone()
        mean = torch.tensor(norm.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(norm.std, dtype=torch.float32).view(1, -1, 1, 1)
        return self.images * std + mean

    def subset(self, index: torch.Tensor | list[int]) -> "SyntheticSet":
        """A new set holding the rows in ``index`` (same meta)."""
        index = torch.as_tensor(index, dtype=torch.long)
        soft = None if self.soft_labels is None else self.soft_labels[index]
        return SyntheticSet(self.images[index], self.labels[index], self.num_classes, soft, dict(self.meta),
                            self.formation_factor, self.learned_lr, self.normalization, self.privacy)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike) -> Path:
        """Write the set as ``.npz`` (no pickle), atomically: a failure leaves any old file intact."""
        self.validate()
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "images": self.images.numpy(),
            "labels": self.labels.numpy(),
            "meta_json": np.array(
                json.dumps({"format_version": FORMAT_VERSION, "num_classes": self.num_classes, "meta": self.meta,
                            "fields": self.typed_fields()})
            ),
        }
        if self.soft_labels is not None:
            arrays["soft_labels"] = self.soft_labels.numpy()
        return write_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SyntheticSet":
        """Read a set written by :meth:`save`. Pickled or malformed files are refused."""
        path = Path(path)
        if not path.is_file():
            raise InvalidSyntheticSetError(f"{path}: no such file")
        if not zipfile.is_zipfile(path):
            raise InvalidSyntheticSetError(f"{path}: not a readable .npz file (not a zip archive)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                keys = _checked_keys(npz.zip, path)  # names and sizes, before any array is read
                return cls.from_arrays({k: npz[k] for k in keys}, source=str(path))
        except InvalidSyntheticSetError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise InvalidSyntheticSetError(f"{path}: not a readable .npz file ({exc})") from exc
        except ValueError as exc:
            raise InvalidSyntheticSetError(f"{path}: refused ({exc})") from exc

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "arrays") -> "SyntheticSet":
        """Build from the arrays of a saved file or a network payload, checking everything."""
        keys = set(arrays)
        missing = _REQUIRED_KEYS - keys
        if missing:
            raise InvalidSyntheticSetError(f"{source}: missing key(s) {sorted(missing)}")
        extra = keys - _REQUIRED_KEYS - _OPTIONAL_KEYS
        if extra:
            raise InvalidSyntheticSetError(f"{source}: unexpected key(s) {sorted(extra)}")
        for key in keys:
            if arrays[key].dtype == object:
                raise InvalidSyntheticSetError(f"{source}: key '{key}' holds Python objects (pickle), refused")
        images, labels = arrays["images"], arrays["labels"]
        if images.dtype != np.float32:
            raise InvalidSyntheticSetError(f"{source}: images must be float32, got {images.dtype}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise InvalidSyntheticSetError(f"{source}: labels must be integers, got {labels.dtype}")
        try:
            header = json.loads(str(arrays["meta_json"]))
            num_classes = int(header["num_classes"])
            meta = header.get("meta", {})
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidSyntheticSetError(f"{source}: meta_json is not valid metadata ({exc})") from exc
        if not isinstance(meta, dict):
            raise InvalidSyntheticSetError(f"{source}: meta must be a JSON object")
        try:
            typed = cls.fields_from_json(header.get("fields", {}))  # format 1 has none: its meta keys are adopted
        except InvalidSyntheticSetError as exc:
            raise InvalidSyntheticSetError(f"{source}: {exc}") from exc
        soft = arrays.get("soft_labels")
        if soft is not None and soft.dtype != np.float32:
            raise InvalidSyntheticSetError(f"{source}: soft_labels must be float32, got {soft.dtype}")
        return cls(
            torch.from_numpy(np.array(images)),
            torch.from_numpy(np.array(labels, dtype=np.int64)),
            num_classes,
            None if soft is None else torch.from_numpy(np.array(soft)),
            meta,
            **typed,
        )

    def __repr__(self) -> str:
        method = self.meta.get("method", "?")
        soft = ", soft labels" if self.has_soft_labels else ""
        return f"SyntheticSet({len(self)} images {self.image_shape}, {self.num_classes} classes, method={method}{soft})"


def _check_factor_type(factor: Any, what: str) -> None:
    if isinstance(factor, bool) or not isinstance(factor, int):  # "abc" or 2.0 from a file
        raise InvalidSyntheticSetError(f"{what} must be an integer in 1..{MAX_FORMATION_FACTOR}, got {factor!r}")


def _normalization_from_meta(norm: Any) -> Normalization | None:
    """A :class:`Normalization` from ``{'mean': [...], 'std': [...]}`` (empty or ``None``: none), checked."""
    if not norm:  # absent or empty: the images are in pixel space
        return None
    if not isinstance(norm, dict) or not all(isinstance(norm.get(k), (list, tuple)) for k in ("mean", "std")):
        raise InvalidSyntheticSetError("normalization must be {'mean': [...], 'std': [...]}")
    for key in ("mean", "std"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in norm[key]):
            raise InvalidSyntheticSetError(f"normalization['{key}'] must hold finite numbers")
    return Normalization(tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"]))


def _checked_keys(zf: zipfile.ZipFile, path: Path) -> list[str]:
    """The array names of a set file, refusing unknown or duplicate members and
    absurd total sizes (from the ``.npy`` headers) before any data is read."""
    allowed = _REQUIRED_KEYS | _OPTIONAL_KEYS
    names = zf.namelist()
    if len(set(names)) != len(names):
        raise InvalidSyntheticSetError(f"{path}: the archive names a member twice")
    keys = []
    for name in names:
        key = name[: -len(".npy")] if name.endswith(".npy") else None
        if key not in allowed:
            raise InvalidSyntheticSetError(
                f"{path}: unexpected key {name[:80]!r}; a synthetic-set file holds only "
                f"{', '.join(sorted(k + '.npy' for k in allowed))}"
            )
        keys.append(key)
    missing = _REQUIRED_KEYS - set(keys)
    if missing:
        raise InvalidSyntheticSetError(f"{path}: missing key(s) {sorted(missing)}")
    total = 0
    for key in keys:
        try:
            total += npy_member_header(zf, f"{key}.npy")[2]
        except ValueError as exc:
            raise InvalidSyntheticSetError(f"{path}: key '{key}' refused ({exc})") from exc
    if total > MAX_LOAD_BYTES:
        raise InvalidSyntheticSetError(f"{path}: the arrays would need {total} bytes, over the {MAX_LOAD_BYTES} limit")
    return keys
