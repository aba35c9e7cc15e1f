"""``CondensedBuffer``: an Avalanche storage policy holding condensed (synthetic) images."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from avalanche.training.storage_policy import ExemplarsBuffer

from condense.errors import CondenseError, InvalidDataError
from condense.registry import get_method
from condense.serialization import json_safe, write_npz_atomic
from condense.strategies.experience_data import ExperienceTensors, read_dataset, read_experience
from condense.strategies.group_condense import SMALL_CLASS_POLICIES, Group, condense_groups

STATE_VERSION = 1


class BufferBudgetError(CondenseError):
    """The memory budget cannot hold one image of every class seen."""


def group_shares(groups: list[Group], max_size: int) -> dict[Group, int]:
    """Class-balanced shares of ``max_size`` images: ``max_size // G`` each, and the
    remainder one by one to the groups seen first. Raises :class:`BufferBudgetError`
    when ``max_size < G`` (a class with no image would be silently forgotten)."""
    if max_size < len(groups):
        raise BufferBudgetError(
            f"a buffer of {max_size} images cannot keep one image of each of the {len(groups)} classes seen; "
            f"raise the memory to at least {len(groups)}"
        )
    base, extra = divmod(max_size, max(1, len(groups)))
    return {g: base + (1 if i < extra else 0) for i, g in enumerate(groups)}


class CondensedBuffer(ExemplarsBuffer):
    """Replay memory filled by condensing each experience, class by class, with
    any method of the registry (``dm``, ``herding``, ``kcenter``, ``random``, ...).

    **Memory accounting.** ``max_size`` counts images of the input's size: a
    buffer of 100 holds at most 100 images (each the shape and dtype of one
    experience image), plus their class and task labels, never more. Memory is
    shared equally by the (task, class) groups seen so far (``max_size // G``,
    remainder to the groups seen first). When new classes arrive, older groups
    shrink to their new share with ``resize_method`` applied to their synthetic
    images alone (the real data of past experiences is never read again):
    ``"herding"`` selects inside the synthetic set, ``"dm"`` re-condenses it,
    ``"random"`` subsamples; any registry method works. A group can never grow
    back, so with ``total_classes`` given every class gets its final share
    ``max_size // total_classes`` from the start instead.

    **Image space.** Experiences are read with ``exp.dataset.eval()`` (no
    training augmentation). The method normalizes with the experience's own
    statistics and the result is mapped back (``SyntheticSet.denormalized_images``),
    so the buffer holds images in exactly the space the experience's images
    were read in, whatever normalization the stream applies.

    **Safety.** A new buffer is built completely before it replaces the old one:
    an error or a ``KeyboardInterrupt`` during condensation leaves the previous
    buffer as it was. Bad input (an empty experience, a shape that differs from
    earlier experiences, a budget below the number of classes, a class smaller
    than its share with ``small_classes="error"``) raises a
    :class:`~condense.errors.CondenseError` naming the problem, before anything changes.

    Args:
        max_size: memory budget in images.
        method: registry name of the condensation method.
        method_kwargs: its hyperparameters (e.g. ``{"steps": 200, "batch_real": 64}``).
        resize_method, resize_kwargs: how a group's images are shrunk to a smaller share.
        total_classes: if known, fix every share at ``max_size // total_classes``.
        small_classes: ``"error"`` or ``"keep"`` (store all samples of a class
            that has fewer than its share).
        seed: seeds the methods (experience ``i`` uses ``seed + i``).
        device: where condensation runs (``None``: the strategy's device); the buffer stays on the CPU.
        show_progress: tqdm bars during condensation (``CONDENSE_QUIET=1`` turns them off).
        cache: an optional dict shared between buffers that memoizes condensation
            results by (data fingerprint, targets, method, settings, seed); the
            methods are deterministic given these, so benchmarks that compare
            replay options on one stream condense each experience once. Not saved.
    """

    def __init__(
        self,
        max_size: int,
        method: str = "dm",
        method_kwargs: dict[str, Any] | None = None,
        resize_method: str = "herding",
        resize_kwargs: dict[str, Any] | None = None,
        total_classes: int | None = None,
        small_classes: str = "error",
        seed: int = 0,
        device: str | None = None,
        show_progress: bool = True,
        cache: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_size)
        if max_size < 1:
            raise BufferBudgetError(f"max_size must be >= 1 image, got {max_size}")
        get_method(method), get_method(resize_method)  # unknown names fail here, not after an experience
        if small_classes not in SMALL_CLASS_POLICIES:
            raise ValueError(f"small_classes must be one of {SMALL_CLASS_POLICIES}, got {small_classes!r}")
        if total_classes is not None and max_size < total_classes:
            raise BufferBudgetError(f"max_size {max_size} is smaller than total_classes {total_classes}")
        self.method = method
        self.method_kwargs = dict(method_kwargs or {})
        self.resize_method = resize_method
        self.resize_kwargs = dict(resize_kwargs or {})
        self.total_classes = total_classes
        self.small_classes = small_classes
        self.seed = seed
        self.device = device
        self.show_progress = show_progress
        self.cache = cache
        self._groups: dict[Group, torch.Tensor] = {}  # in the order seen
        self._image_shape: tuple[int, ...] | None = None
        self.updates = 0
        self.history: list[dict[str, Any]] = []  # one record per update: seconds, groups, sizes

    # ----------------------------------------------------------- inspection
    @property
    def groups(self) -> list[Group]:
        """``(task, class)`` groups held, in the order they were first seen."""
        return list(self._groups)

    def group_sizes(self) -> dict[Group, int]:
        return {g: int(v.shape[0]) for g, v in self._groups.items()}

    def __len__(self) -> int:
        return sum(self.group_sizes().values())

    @property
    def nbytes(self) -> int:
        """Bytes of the stored images (labels not counted)."""
        return sum(v.numel() * v.element_size() for v in self._groups.values())

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, class labels, task labels)`` of the whole buffer (CPU)."""
        return _flatten(self._groups, self._image_shape)

    def target_shares(self, groups: list[Group]) -> dict[Group, int]:
        if self.total_classes is not None:
            if len(groups) > self.total_classes:
                raise BufferBudgetError(f"{len(groups)} classes seen but total_classes={self.total_classes}")
            return {g: self.max_size // self.total_classes for g in groups}
        return group_shares(groups, self.max_size)

    # ---------------------------------------------------------------- update
    def post_adapt(self, agent_state: Any, exp: Any) -> None:
        """Condense experience ``exp`` into the buffer (Avalanche calls this after training on it)."""
        data = read_experience(exp)
        device = self.device or str(getattr(agent_state, "device", "cpu"))
        self.update_from_tensors(data, device=device, name=f"experience {getattr(exp, 'current_experience', self.updates)}")

    def update_from_dataset(self, dataset: Any, device: str | None = None) -> None:
        """Condense any Avalanche/torch dataset of ``(x, y[, t])`` items into the buffer."""
        self.update_from_tensors(read_dataset(dataset), device=device or self.device or "cpu")

    def update_from_tensors(self, data: ExperienceTensors, device: str = "cpu", name: str = "experience") -> None:
        """The update itself: check, condense new groups, shrink old ones, then swap."""
        start = time.perf_counter()
        shape = tuple(data.x.shape[1:])
        if self._image_shape is not None and shape != self._image_shape:
            raise InvalidDataError(f"{name}: images of shape {shape}, but the buffer holds images of shape {self._image_shape}")
        new_groups = data.groups()
        order = list(self._groups) + [g for g in new_groups if g not in self._groups]
        shares = self.target_shares(order)
        # Groups seen again (domain-incremental streams) are condensed from their
        # current images together with the new samples.
        x, y, t = data.x, data.y, data.t
        repeat = [g for g in new_groups if g in self._groups]
        if repeat:
            old = {g: self._groups[g] for g in repeat}
            ox, oy, ot = _flatten(old, shape)
            x, y, t = torch.cat([x, ox]), torch.cat([y, oy]), torch.cat([t, ot])
        targets = {g: shares[g] for g in new_groups}
        key = _cache_key(x, y, t, targets, self.method, self.method_kwargs, self.seed + self.updates, self.small_classes)
        cached = self.cache is not None and key in self.cache
        if cached:
            fresh = {g: v.clone() for g, v in self.cache[key].items()}
        else:
            fresh = condense_groups(
                x, y, t, targets, self.method, self.method_kwargs,
                seed=self.seed + self.updates, device=device, show_progress=self.show_progress,
                small_classes=self.small_classes, what=name,
            )
        condense_seconds = time.perf_counter() - start
        kept = {g: v for g, v in self._groups.items() if g not in fresh}
        shrunk = self._shrink(kept, shares, device)
        new = {g: (fresh[g] if g in fresh else shrunk[g]) for g in order}
        seconds = time.perf_counter() - start
        # Swap last: nothing above touched self._groups or self.buffer.
        self._commit(new, shape)
        if self.cache is not None and not cached:
            self.cache[key] = {g: v.clone() for g, v in fresh.items()}
        self.updates += 1
        self.history.append({"name": name, "seconds": round(seconds, 3), "condense_seconds": round(condense_seconds, 3),
                             "resize_seconds": round(seconds - condense_seconds, 3), "cached": cached,
                             "new_groups": len(new_groups), "size": len(self)})

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the budget to ``new_size`` images, shrinking groups with ``resize_method``.

        A larger budget takes effect for groups condensed later (old groups
        cannot grow back without their real data).
        """
        order = list(self._groups)
        if new_size < 1:
            raise BufferBudgetError(f"new_size must be >= 1 image, got {new_size}")
        if self.total_classes is not None and new_size < self.total_classes:
            raise BufferBudgetError(f"new_size {new_size} is smaller than total_classes {self.total_classes}")
        old_size = self.max_size
        self.max_size = new_size
        try:
            shares = self.target_shares(order)
            device = self.device or str(getattr(strategy, "device", "cpu"))
            new = self._shrink(dict(self._groups), shares, device)
        except BaseException:
            self.max_size = old_size
            raise
        if order:
            self._commit(new, self._image_shape)

    def _shrink(self, groups: dict[Group, torch.Tensor], shares: dict[Group, int], device: str) -> dict[Group, torch.Tensor]:
        over = {g: shares[g] for g, v in groups.items() if v.shape[0] > shares[g]}
        if not over:
            return dict(groups)
        x, y, t = _flatten({g: groups[g] for g in over}, None)
        seed = self.seed + 1000 + self.updates
        key = "resize:" + _cache_key(x, y, t, over, self.resize_method, self.resize_kwargs, seed, "keep")
        if self.cache is not None and key in self.cache:
            return {g: self.cache[key].get(g, v).clone() for g, v in groups.items()}
        smaller = condense_groups(
            x, y, t, over, self.resize_method, self.resize_kwargs,
            seed=seed, device=device, show_progress=self.show_progress,
            small_classes="keep", what="buffer resize",
        )
        if self.cache is not None:
            self.cache[key] = {g: v.clone() for g, v in smaller.items()}
        return {g: smaller.get(g, v) for g, v in groups.items()}

    def _commit(self, groups: dict[Group, torch.Tensor], shape: tuple[int, ...] | None) -> None:
        x, y, t = _flatten(groups, shape)
        if x.shape[0] > self.max_size:  # an invariant, not an input error
            raise AssertionError(f"buffer would hold {x.shape[0]} images, over its budget of {self.max_size}")
        dataset = _avalanche_dataset(x, y, t)
        self._groups = {g: v.detach().cpu().contiguous() for g, v in groups.items()}
        self._image_shape = shape
        self.buffer = dataset

    # --------------------------------------------------------- save / load
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The buffer as plain arrays (what :meth:`save` writes)."""
        x, y, t = self.tensors()
        config = {
            "version": STATE_VERSION,
            "max_size": self.max_size,
            "method": self.method,
            "method_kwargs": json_safe(self.method_kwargs),
            "resize_method": self.resize_method,
            "resize_kwargs": json_safe(self.resize_kwargs),
            "total_classes": self.total_classes,
            "small_classes": self.small_classes,
            "seed": self.seed,
            "updates": self.updates,
            "groups": [list(g) for g in self._groups],
            "image_shape": list(self._image_shape) if self._image_shape else None,
            "history": self.history,
        }
        return {"images": x.numpy(), "labels": y.numpy(), "task_labels": t.numpy(), "state_json": np.array(json.dumps(config))}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the buffer as ``.npz`` (no pickle), atomically."""
        return write_npz_atomic(path, self.state_arrays())

    def load_state(self, path: str | os.PathLike) -> "CondensedBuffer":
        """Replace this buffer's contents (and budget) with a file written by :meth:`save`.

        The method settings of this object are kept; the file's are in ``loaded_config``.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidDataError(f"{path}: no such buffer file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            config = json.loads(str(arrays["state_json"]))
            x = torch.from_numpy(np.array(arrays["images"], dtype=np.float32))
            y = torch.from_numpy(np.array(arrays["labels"], dtype=np.int64))
            t = torch.from_numpy(np.array(arrays["task_labels"], dtype=np.int64))
            groups = [tuple(int(v) for v in g) for g in config["groups"]]
            max_size = int(config["max_size"])
        except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidDataError(f"{path}: not a CondensedBuffer file ({exc})") from exc
        if not (x.shape[0] == y.shape[0] == t.shape[0]) or x.shape[0] > max_size:
            raise InvalidDataError(f"{path}: inconsistent buffer arrays ({x.shape[0]} images, budget {max_size})")
        if x.ndim != 4 or not torch.isfinite(x).all():
            raise InvalidDataError(f"{path}: buffer images must be finite (N, C, H, W), got shape {tuple(x.shape)}")
        if (y < 0).any() or (self.total_classes is not None and (y >= self.total_classes).any()):
            raise InvalidDataError(f"{path}: buffer labels out of range for {self.total_classes} classes")
        stored = {(int(a), int(b)) for a, b in zip(t.tolist(), y.tolist())}
        if stored != set(groups):
            raise InvalidDataError(f"{path}: group list does not match the stored labels")
        loaded = {g: x[(t == g[0]) & (y == g[1])] for g in groups}
        shape = tuple(x.shape[1:]) if x.shape[0] else None
        old_size = self.max_size
        self.max_size = max_size
        try:
            self._commit(loaded, shape)
        except BaseException:
            self.max_size = old_size
            raise
        self.updates = int(config.get("updates", 0))
        self.history = list(config.get("history", []))
        self.loaded_config = config
        return self

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> "CondensedBuffer":
        """A buffer rebuilt from a file written by :meth:`save` (settings from the file unless overridden)."""
        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                config = json.loads(str(npz["state_json"])) if "state_json" in npz.files else None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # not an npz, truncated, or state_json not JSON
            raise InvalidDataError(f"{path}: not a CondensedBuffer file ({exc})") from exc
        if not isinstance(config, dict):
            raise InvalidDataError(f"{path}: not a CondensedBuffer file (no state_json)")
        params = {k: config[k] for k in ("max_size", "method", "method_kwargs", "resize_method", "resize_kwargs",
                                         "total_classes", "small_classes", "seed") if k in config}
        params.update(overrides)
        return cls(**params).load_state(path)

    def __repr__(self) -> str:
        return (f"CondensedBuffer({len(self)}/{self.max_size} images, {len(self._groups)} classes, "
                f"method={self.method}, resize={self.resize_method})")


def _flatten(groups: dict[Group, torch.Tensor], shape: tuple[int, ...] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not groups:
        empty_shape = (0, *(shape or (1, 1, 1)))
        return torch.zeros(empty_shape), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    xs = [v for v in groups.values()]
    ys = [torch.full((v.shape[0],), g[1], dtype=torch.long) for g, v in groups.items()]
    ts = [torch.full((v.shape[0],), g[0], dtype=torch.long) for g, v in groups.items()]
    return torch.cat(xs).float(), torch.cat(ys), torch.cat(ts)


def _avalanche_dataset(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> Any:
    """Items ``(x, y, t)``, the layout of the experiences' items."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from avalanche.benchmarks.utils.utils import concat_datasets

    if x.shape[0] == 0:
        return concat_datasets([])
    return _make_taskaware_tensor_classification_dataset(x, y, task_labels=t.tolist(), targets=y.tolist())


def _cache_key(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, targets: dict[Group, int], method: str,
               kwargs: dict[str, Any], seed: int, small: str) -> str:
    h = hashlib.sha256()
    for v in (x, y, t):
        h.update(str(tuple(v.shape)).encode())
        h.update(v.contiguous().numpy().tobytes())
    h.update(json.dumps([sorted([list(g), n] for g, n in targets.items()), method, json_safe(kwargs), seed, small],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()
