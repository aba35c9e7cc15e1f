"""Expert trajectories for trajectory matching (MTT).

An expert is a network trained on the real data; its trajectory is its
flattened parameter vector saved at initialisation and after every epoch.
A buffer of trajectories is built once per dataset and architecture, saved as
an ``.npz`` file (no pickle: arrays plus a JSON header) and loaded with checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from condense.serialization import npy_member_header, write_npz_atomic
from condense.augment import SiameseAugment, default_strategy
from condense.errors import CondenseError
from condense.models import build_model
from condense.progress import progress
from condense.real_data import RealData
from condense.training import TrainConfig, isolated_rng, train_classifier

FORMAT_VERSION = 1
MAX_LOAD_BYTES = 8 * 1024**3


class InvalidExpertBufferError(CondenseError):
    """An expert buffer file is malformed or does not fit the data or network it is used with."""


def parameter_shapes(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the trainable parameters, in ``named_parameters`` order."""
    return [(name, tuple(p.shape)) for name, p in net.named_parameters()]


def flatten_parameters(net: nn.Module) -> torch.Tensor:
    """All parameters as one detached float32 vector on the CPU."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in net.parameters()])


def unflatten_parameters(flat: torch.Tensor, shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Views of ``flat`` with the given names and shapes (differentiable in ``flat``)."""
    out, offset = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) if shape else 1
        out[name] = flat[offset : offset + n].view(shape)
        offset += n
    if offset != flat.numel():
        raise InvalidExpertBufferError(f"parameter vector has {flat.numel()} values, the network {offset}")
    return out


@dataclass
class ExpertBuffer:
    """Trajectories of experts: ``trajectories[e][t]`` is expert ``e``'s parameter
    vector after ``t`` epochs (``t = 0`` is its initialisation).

    ``meta`` records what the experts are: ``model``, ``model_kwargs``,
    ``image_shape``, ``num_classes``, ``parameter_shapes``, ``normalization``,
    ``epochs``, ``lr``, ``source`` fingerprint and the training recipe.
    """

    trajectories: list[torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.trajectories = [torch.as_tensor(t).detach().to("cpu", torch.float32).contiguous() for t in self.trajectories]
        self.validate()

    @property
    def num_experts(self) -> int:
        return len(self.trajectories)

    @property
    def epochs(self) -> int:
        """Epochs recorded per expert (each trajectory holds ``epochs + 1`` vectors)."""
        return int(self.trajectories[0].shape[0]) - 1

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(str(n), tuple(int(d) for d in s)) for n, s in self.meta["parameter_shapes"]]

    def validate(self) -> "ExpertBuffer":
        """Raise :class:`InvalidExpertBufferError` naming the first problem."""
        if not self.trajectories:
            raise InvalidExpertBufferError("expert buffer holds no trajectories")
        for key in ("model", "image_shape", "num_classes", "parameter_shapes"):
            if key not in self.meta:
                raise InvalidExpertBufferError(f"expert buffer meta lacks '{key}'")
        _check_meta_structure(self.meta)
        num_params = sum(int(np.prod(s)) if s else 1 for _, s in self.shapes)
        first = self.trajectories[0].shape
        for i, t in enumerate(self.trajectories):
            if t.dim() != 2 or t.shape[1] != num_params:
                raise InvalidExpertBufferError(
                    f"trajectory {i} has shape {tuple(t.shape)}; expected (epochs + 1, {num_params})"
                )
            if t.shape != first:
                raise InvalidExpertBufferError(f"trajectory {i} has shape {tuple(t.shape)}, trajectory 0 {tuple(first)}")
            if not torch.isfinite(t).all():
                raise InvalidExpertBufferError(f"trajectory {i} contains NaN or infinite values")
        if first[0] < 2:
            raise InvalidExpertBufferError("trajectories must hold at least one epoch after initialisation")
        return self

    def build_network(self) -> nn.Module:
        """A network of the experts' architecture (random weights)."""
        c, h, w = self.meta["image_shape"]
        return build_model(self.meta["model"], (c, h, w), int(self.meta["num_classes"]), **(self.meta.get("model_kwargs") or {}))

    def check_compatible(self, net: nn.Module, real: RealData) -> None:
        """Refuse a buffer made for another architecture, image shape, class count or normalisation."""
        if self.shapes != parameter_shapes(net):
            raise InvalidExpertBufferError(
                f"expert buffer was trained for a {self.meta['model']} with kwargs {self.meta.get('model_kwargs')}; "
                "its parameters do not match the network of this run (pass the same model and model_kwargs)"
            )
        if list(self.meta["image_shape"]) != list(real.x.shape[1:]):
            raise InvalidExpertBufferError(f"expert buffer is for images {self.meta['image_shape']}, data has {list(real.x.shape[1:])}")
        if int(self.meta["num_classes"]) != real.num_classes:
            raise InvalidExpertBufferError(f"expert buffer is for {self.meta['num_classes']} classes, data has {real.num_classes}")
        norm = self.meta.get("normalization")
        if norm is not None:
            mine, theirs = real.normalization.to_meta(), norm
            close = all(np.allclose(mine[k], theirs[k], atol=1e-3) for k in ("mean", "std"))
            if not close:
                raise InvalidExpertBufferError(
                    f"expert buffer was trained on data normalised with {theirs}, this data uses {mine}"
                )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file, then rename): a failed save leaves any old file intact."""
        arrays = {f"trajectory_{i:04d}": t.numpy() for i, t in enumerate(self.trajectories)}
        header = {"format_version": FORMAT_VERSION, **self.meta}
        arrays["meta_json"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        return write_npz_atomic(path, arrays, compressed=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ExpertBuffer":
        """Read a buffer written by :meth:`save` (``allow_pickle=False``; sizes checked before reading)."""
        path = Path(path)
        if not path.is_file():
            raise InvalidExpertBufferError(f"no expert buffer at {path}")
        if not zipfile.is_zipfile(path):  # np.load would return a bare array for a .npy file
            raise InvalidExpertBufferError(f"{path} is not an npz file (not a zip archive)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                keys = set(npz.files)
                if "meta_json" not in keys:
                    raise InvalidExpertBufferError(f"{path} has no 'meta_json' entry")
                traj_keys = sorted(k for k in keys if k.startswith("trajectory_"))
                unknown = keys - set(traj_keys) - {"meta_json"}
                if unknown:
                    raise InvalidExpertBufferError(f"{path} holds unexpected arrays {sorted(unknown)[:5]}")
                # The .npy headers say what reading allocates; the zip directory may say anything.
                total = sum(npy_member_header(npz.zip, f"{k}.npy")[2] for k in keys)
                if total > MAX_LOAD_BYTES:
                    raise InvalidExpertBufferError(f"{path} would take {total} bytes, more than the {MAX_LOAD_BYTES} allowed")
                meta = json.loads(bytes(npz["meta_json"]).decode("utf-8"))
                trajectories = [torch.from_numpy(np.asarray(npz[k], dtype=np.float32)) for k in traj_keys]
        except InvalidExpertBufferError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, zlib.error) as exc:
            # KeyError: a member not named *.npy (np.load lists it but cannot read it).
            raise InvalidExpertBufferError(f"{path} is not a readable expert buffer (damaged or not an npz file: {exc})") from exc
        except ValueError as exc:  # malformed .npy header, bad JSON or UTF-8
            raise InvalidExpertBufferError(f"{path} is not a readable expert buffer: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise InvalidExpertBufferError(f"{path} has format version {meta.get('format_version') if isinstance(meta, dict) else None}, expected {FORMAT_VERSION}")
        meta.pop("format_version")
        try:
            return cls(trajectories, meta)
        except InvalidExpertBufferError as exc:
            raise InvalidExpertBufferError(f"{path}: {exc}") from exc


def _is_count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_meta_structure(meta: dict[str, Any]) -> None:
    """Types of the meta entries that :attr:`ExpertBuffer.shapes` and :meth:`ExpertBuffer.build_network` read."""
    shapes = meta["parameter_shapes"]
    if not isinstance(shapes, list) or not shapes:
        raise InvalidExpertBufferError(f"expert buffer meta 'parameter_shapes' must be a non-empty list of [name, shape], got {shapes!r:.80}")
    for i, entry in enumerate(shapes):
        ok = (
            isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], (list, tuple)) and all(_is_count(d) for d in entry[1])
        )
        if not ok:
            raise InvalidExpertBufferError(
                f"expert buffer meta 'parameter_shapes' entry {i} must be [name, [non-negative ints]], got {entry!r:.80}"
            )
    image_shape = meta["image_shape"]
    if not isinstance(image_shape, (list, tuple)) or len(image_shape) != 3 or not all(_is_count(d, 1) for d in image_shape):
        raise InvalidExpertBufferError(f"expert buffer meta 'image_shape' must be [C, H, W] positive ints, got {image_shape!r:.80}")
    if not _is_count(meta["num_classes"], 1):
        raise InvalidExpertBufferError(f"expert buffer meta 'num_classes' must be a positive int, got {meta['num_classes']!r:.80}")
    if not isinstance(meta["model"], str):
        raise InvalidExpertBufferError(f"expert buffer meta 'model' must be a name, got {meta['model']!r:.80}")


def train_experts(
    real: RealData,
    num_experts: int = 5,
    epochs: int = 10,
    model: str = "convnet",
    model_kwargs: dict[str, Any] | None = None,
    lr: float = 0.01,
    batch_size: int = 256,
    dsa: bool = True,
    max_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = True,
) -> ExpertBuffer:
    """Train ``num_experts`` networks on ``real`` and record their parameters after every epoch.

    The recipe is MTT's buffer script: SGD without momentum or weight decay at
    ``lr``, minibatch ``batch_size``, DSA augmentation of every minibatch.
    ``max_samples`` trains on a fixed class-balanced random subset (a CPU
    budget knob; ``None`` uses all the data).
    """
    if num_experts < 1 or epochs < 1:
        raise ValueError(f"num_experts and epochs must be >= 1, got {num_experts}, {epochs}")
    x, y = real.x, real.y
    if max_samples is not None and max_samples < x.shape[0]:
        gen = torch.Generator().manual_seed(seed)
        per_class = max(1, max_samples // len(real.classes))
        picks = [idx[torch.randperm(idx.numel(), generator=gen)[:per_class]] for idx in real.index_by_class.values()]
        index = torch.cat(picks).to(x.device)
        x, y = x[index], y[index]
    augment = SiameseAugment(default_strategy(x.shape[1])) if dsa else None
    config = TrainConfig(epochs=1, lr=lr, momentum=0.0, weight_decay=0.0, batch_size=batch_size, decay_at_half=False)
    shape = tuple(real.x.shape[1:])
    trajectories = []
    shapes: list[tuple[str, tuple[int, ...]]] = []
    # Isolated: MTT loads a saved buffer instead of calling this, and both paths
    # must leave the caller's RNG alike (else run 1 and run 2 of one recipe differ).
    with isolated_rng(device):
        for e in progress(range(num_experts), show_progress, desc="experts"):
            torch.manual_seed(seed + 1000 * e)
            gen = torch.Generator().manual_seed(seed + 1000 * e)
            net = build_model(model, shape, real.num_classes, **(model_kwargs or {})).to(device)
            shapes = parameter_shapes(net)
            points = [flatten_parameters(net)]
            for _ in range(epochs):
                # One-epoch calls with momentum 0 are the same as one long run, and let us record every epoch.
                train_classifier(net, x, y, config, augment=augment, device=device, generator=gen)
                points.append(flatten_parameters(net))
            trajectories.append(torch.stack(points))
    meta = {
        "model": model,
        "model_kwargs": model_kwargs or {},
        "image_shape": list(shape),
        "num_classes": real.num_classes,
        "parameter_shapes": [[n, list(s)] for n, s in shapes],
        "normalization": real.normalization.to_meta(),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "dsa": dsa,
        "max_samples": max_samples,
        "seed": seed,
        "source": {"name": real.source.name, "fingerprint": real.source.fingerprint(), "samples": int(x.shape[0])},
    }
    return ExpertBuffer(trajectories, meta)


def cache_key(real: RealData, **recipe: Any) -> str:
    """A short hash naming the buffer for this data and recipe (the automatic cache's file name)."""
    blob = json.dumps({"source": real.source.fingerprint(), **recipe}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$CONDENSE_CACHE/experts`` or ``~/.cache/condense/experts``."""
    from condense.data.image_folder import cache_dir

    return cache_dir() / "experts"
