"""Server-side checks of every synthetic-set reply before it is used.

A reply is untrusted input from the network: :func:`validate_reply` checks
the keys, the byte size (before decoding anything), dtypes, shapes against
the run's input shape, the image count against ``ipc x classes`` and each
class's against ``ipc``, finite values and the label range, the config's
numbers and metadata, and raises :class:`PayloadRejected` naming the first
problem. The server drops that reply, records (node id, reason) and goes on.
Of the client's metadata only the keys in ``SHARED_META`` with plain values
are kept: nothing a client writes there can change how the server trains.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from condense.errors import CondenseError
from condense.formation import MAX_FORMATION_FACTOR
from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY, ENCODINGS, SHARED_META, DecodedPayload, decode_images

_ALLOWED_ARRAYS = {"images", "labels", "soft_labels"}
_IMAGE_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
_MAX_META_CHARS = 4096  # an honest client's metadata is a few hundred characters


class PayloadRejected(CondenseError):
    """A client's synthetic-set payload failed a server-side check."""


@dataclass(frozen=True)
class PayloadLimits:
    """What the server accepts from one client in one reply.

    Attributes:
        image_shape: ``(C, H, W)`` of the run's inputs.
        num_classes: classes of the task; labels must lie in ``0..num_classes-1``.
        ipc: images per class each client was asked for; a reply holds at most
            ``ipc * num_classes`` images.
        max_bytes: the most bytes the reply's set may take on the wire.
        encodings: encodings the server accepts.
        max_formation_factor: the largest multi-formation factor accepted (a set
            of factor f trains the server on f**2 times as many images).
    """

    image_shape: tuple[int, int, int]
    num_classes: int
    ipc: int
    max_bytes: int
    encodings: tuple[str, ...] = ENCODINGS
    max_formation_factor: int = MAX_FORMATION_FACTOR

    @property
    def max_images(self) -> int:
        return self.ipc * self.num_classes

    @classmethod
    def for_run(cls, image_shape: tuple[int, int, int], num_classes: int, ipc: int, slack: float = 1.25) -> "PayloadLimits":
        """Limits for a run: the bytes of a full float32 set (with soft labels) plus ``slack``."""
        n = ipc * num_classes
        full = n * (math.prod(image_shape) * 4 + 8 + num_classes * 4) + 4096
        return cls(tuple(image_shape), num_classes, ipc, int(full * slack))


def _reject(reason: str) -> None:
    raise PayloadRejected(reason)


def validate_reply(content: RecordDict, limits: PayloadLimits) -> DecodedPayload:
    """Check one reply's synthetic set and decode it, or raise :class:`PayloadRejected`."""
    if ARRAYS_KEY not in content.array_records:
        _reject(f"no ArrayRecord '{ARRAYS_KEY}' in the reply")
    if CONFIG_KEY not in content.config_records:
        _reject(f"no ConfigRecord '{CONFIG_KEY}' in the reply")
    record: ArrayRecord = content.array_records[ARRAYS_KEY]
    config: ConfigRecord = content.config_records[CONFIG_KEY]
    keys = set(record.keys())
    if not {"images", "labels"} <= keys:
        _reject(f"missing array(s) {sorted({'images', 'labels'} - keys)}")
    if keys - _ALLOWED_ARRAYS:
        _reject(f"unexpected array(s) {sorted(keys - _ALLOWED_ARRAYS)}")
    size = record.count_bytes() + config.count_bytes()
    if size > limits.max_bytes:
        _reject(f"payload of {size} bytes is over the limit of {limits.max_bytes}")
    encoding = config.get("encoding")
    if encoding not in limits.encodings:
        _reject(f"encoding {encoding!r} is not one of {list(limits.encodings)}")
    # The declared metadata is checked before anything is parsed.
    img, lab = record["images"], record["labels"]
    if img.dtype != encoding:
        _reject(f"images have dtype {img.dtype}, the declared encoding is {encoding}")
    if len(img.shape) != 4 or tuple(img.shape[1:]) != limits.image_shape:
        _reject(f"images have shape {tuple(img.shape)}, expected (N, {', '.join(map(str, limits.image_shape))})")
    n = int(img.shape[0])
    if n < 1:
        _reject("the set holds no images")
    if n > limits.max_images:
        _reject(f"{n} images is more than ipc x classes = {limits.max_images}")
    try:
        images = img.numpy()
        labels = lab.numpy()
        soft = record["soft_labels"].numpy() if "soft_labels" in keys else None
    except Exception as exc:  # malformed bytes: whatever numpy raises
        _reject(f"arrays cannot be decoded ({type(exc).__name__}: {exc})")
    if images.dtype != _IMAGE_DTYPES[encoding] or images.shape != tuple(img.shape):
        _reject(f"decoded images ({images.dtype}, {images.shape}) differ from their declared metadata")
    if labels.ndim != 1 or labels.shape[0] != n or not np.issubdtype(labels.dtype, np.integer):
        _reject(f"labels must be {n} integers, got dtype {labels.dtype} shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= limits.num_classes:
        _reject(f"labels must lie in 0..{limits.num_classes - 1}, found {int(labels.min())}..{int(labels.max())}")
    per_class = np.bincount(labels.astype(np.int64), minlength=limits.num_classes)
    if per_class.max() > limits.ipc:
        _reject(f"class {int(per_class.argmax())} has {int(per_class.max())} images, more than ipc = {limits.ipc}")
    if encoding != "uint8" and not np.isfinite(images).all():
        _reject("images contain NaN or infinite values")
    if encoding == "uint8":
        channels = limits.image_shape[0]
        for key in ("scale-lo", "scale-hi"):
            value = config.get(key)
            if not isinstance(value, list) or len(value) != channels or not all(_finite_number(v) for v in value):
                _reject(f"uint8 payload needs '{key}' as {channels} finite numbers, got {value!r}")
    if soft is not None:
        if soft.shape != (n, limits.num_classes) or not np.issubdtype(soft.dtype, np.floating):
            _reject(f"soft_labels must be float ({n}, {limits.num_classes}), got {soft.dtype} {soft.shape}")
        if not np.isfinite(soft).all():
            _reject("soft_labels contain NaN or infinite values")
        soft = soft.astype(np.float32)
    num_classes = config.get("num-classes")
    if num_classes != limits.num_classes:
        _reject(f"num-classes is {num_classes!r}, the run has {limits.num_classes}")
    factor = _formation_factor(config.get("formation-factor", 1), limits)
    meta = _shared_meta(config.get("meta-json", "{}"))
    pixels = decode_images(images, config)
    if not np.isfinite(pixels).all():
        _reject("decoded images are not finite")
    return DecodedPayload(pixels, labels.astype(np.int64), limits.num_classes, soft, meta, factor)


def _formation_factor(value: object, limits: PayloadLimits) -> int:
    """The declared formation factor: an integer in 1..max that divides the image's height and width."""
    if isinstance(value, bool) or not isinstance(value, int):
        _reject(f"formation-factor must be an integer, got {value!r}")
    if not 1 <= value <= limits.max_formation_factor:
        _reject(f"formation-factor {value} is outside 1..{limits.max_formation_factor}")
    _, h, w = limits.image_shape
    if h % value or w % value:
        _reject(f"formation-factor {value} does not divide the image size {h}x{w}")
    return value


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: object) -> bool:
    """A JSON scalar, or a short list of numbers (``image_shape``)."""
    if value is None or isinstance(value, (bool, str)):
        return not isinstance(value, str) or len(value) <= 200
    if isinstance(value, list):
        return len(value) <= 8 and all(_finite_number(v) for v in value)
    return _finite_number(value)


def _shared_meta(text: object) -> dict:
    """The client's metadata reduced to ``SHARED_META`` keys with plain values (or a rejection)."""
    if not isinstance(text, str) or len(text) > _MAX_META_CHARS:
        _reject(f"meta-json must be a JSON string of at most {_MAX_META_CHARS} characters")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:  # deep nesting raises RecursionError, not ValueError
        _reject(f"meta-json is not JSON ({type(exc).__name__})")
    if not isinstance(meta, dict):
        _reject("meta-json must be a JSON object")
    return {k: v for k, v in meta.items() if k in SHARED_META and _plain(v)}
