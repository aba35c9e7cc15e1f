"""A :class:`SyntheticSet` as a Flower payload: an ``ArrayRecord`` plus a ``ConfigRecord``.

Images travel in *pixel space* (the set's own normalization undone), so every
client may condense with its local statistics and the server re-normalizes
all sets with one normalization of its own. A set stored in a multi-formation
(``formation_factor`` f > 1: each image packs f x f tiles) travels packed,
with its factor in the config (``formation-factor``), and learned soft labels
travel beside the images; the server expands and uses both. Three encodings:

* ``float32``: exact;
* ``float16``: half the bytes, ~3 significant digits;
* ``uint8``: a quarter of the bytes; each channel is mapped linearly from
  ``[lo, hi]`` (its min and max, recorded in the config) onto ``0..255``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord

from condense.normalization import Normalization
from condense.synthetic_set import SyntheticSet

ENCODINGS = ("float32", "float16", "uint8")
ARRAYS_KEY = "syn"  # key of the ArrayRecord in a reply's RecordDict
CONFIG_KEY = "syn-config"  # key of its ConfigRecord
# meta entries a client may share; anything else (e.g. a coreset's selected
# indices into private data) stays on the client.
SHARED_META = ("method", "ipc", "seed", "steps_run", "seconds", "final_loss", "image_shape")


@dataclass
class DecodedPayload:
    """Pixel-space images (float32, packed when ``formation_factor > 1``), labels and
    optional soft labels of a payload."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    soft_labels: np.ndarray | None
    meta: dict[str, Any]
    formation_factor: int = 1

    def to_synthetic_set(self, normalization: Normalization | None) -> SyntheticSet:
        """Normalize with the server's statistics and build a validated set."""
        x = torch.from_numpy(self.images)
        meta = dict(self.meta)
        if normalization is not None:
            x = normalization.apply(x)
        soft = None if self.soft_labels is None else torch.from_numpy(self.soft_labels)
        labels = torch.from_numpy(self.labels.astype(np.int64))
        return SyntheticSet(x, labels, self.num_classes, soft, meta, formation_factor=self.formation_factor,
                            normalization=normalization)


def encode_synthetic_set(syn: SyntheticSet, encoding: str = "float32") -> tuple[ArrayRecord, ConfigRecord]:
    """The records a client sends for ``syn``."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown payload encoding '{encoding}': choose one of {', '.join(ENCODINGS)}")
    syn.validate()
    x = syn.denormalized_images().numpy().astype(np.float32)  # affine per channel: commutes with expansion
    config: dict[str, Any] = {
        "encoding": encoding,
        "num-classes": syn.num_classes,
        "formation-factor": syn.formation_factor,
        "meta-json": json.dumps({k: syn.meta[k] for k in SHARED_META if k in syn.meta}),
    }
    if encoding == "float16":
        images = x.astype(np.float16)
    elif encoding == "uint8":
        lo = x.min(axis=(0, 2, 3)).astype(np.float64)
        hi = x.max(axis=(0, 2, 3)).astype(np.float64)
        span = np.where(hi > lo, hi - lo, 1.0)
        q = np.rint((x - lo.reshape(1, -1, 1, 1)) / span.reshape(1, -1, 1, 1) * 255.0)
        images = np.clip(q, 0, 255).astype(np.uint8)
        config["scale-lo"] = lo.tolist()
        config["scale-hi"] = hi.tolist()
    else:
        images = x
    arrays = {"images": np.ascontiguousarray(images), "labels": syn.labels.numpy().astype(np.uint8 if syn.num_classes <= 256 else np.int32)}
    if syn.soft_labels is not None:
        soft = syn.soft_labels.numpy()
        arrays["soft_labels"] = soft.astype(np.float16) if encoding != "float32" else soft
    return ArrayRecord({k: Array(v) for k, v in arrays.items()}), ConfigRecord(config)


def decode_images(images: np.ndarray, config: ConfigRecord) -> np.ndarray:
    """Pixel-space float32 images from their encoded form (no checks: see :mod:`.validation`)."""
    if images.dtype == np.uint8:
        lo = np.asarray(config["scale-lo"], dtype=np.float64).reshape(1, -1, 1, 1)
        hi = np.asarray(config["scale-hi"], dtype=np.float64).reshape(1, -1, 1, 1)
        span = np.where(hi > lo, hi - lo, 1.0)
        return (images.astype(np.float64) / 255.0 * span + lo).astype(np.float32)
    return images.astype(np.float32)


def encoded_bytes(syn: SyntheticSet, encoding: str) -> int:
    """Bytes the set's ArrayRecord takes on the wire in ``encoding``."""
    return encode_synthetic_set(syn, encoding)[0].count_bytes()
