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
from condense.strategies.stored_group import StoredGroup, pad_logits, soft_targets

# 2: per-row formation factors and soft labels (version-1 files load as factor 1, hard labels).
STATE_VERSION = 2


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
    buffer of 100 holds at most 100 stored images (each the shape and dtype of
    one experience image, :attr:`nbytes` at most ``max_size`` times one image's
    bytes), plus their class and task labels and, for methods that learn them,
    soft labels (:attr:`label_nbytes`), never more. A method that stores
    multi-formation images (IDM: ``f x f`` tiles in one image) costs one image
    per stored image; replay expands each into ``f**2`` training images
    (:meth:`replay_tensors`, :attr:`buffer`). Learned soft labels (KRR, MTT)
    are kept and replay trains on them (:class:`CondensedReplayPlugin`). Memory is
    shared equally by the (task, class) groups seen so far (``max_size // G``,
    remainder to the groups seen first). When new classes arrive, older groups
    shrink to their new share with ``resize_method`` applied to their synthetic
    images alone (the real data of past experiences is never read again):
    ``"herding"`` selects inside the synthetic set, ``"dm"`` re-condenses it,
    ``"random"`` subsamples; any registry method works. A group in a formation
    is resized in its stored form (its rows are the resize method's data) and
    keeps its formation; a group with soft labels gives every resized row the
    soft label of its nearest stored row (exact for selection methods) unless
    the resize method learns its own. A group can never grow
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
        self._groups: dict[Group, StoredGroup] = {}  # in the order seen
        self._image_shape: tuple[int, ...] | None = None
        self.updates = 0
        self.history: list[dict[str, Any]] = []  # one record per update: seconds, groups, sizes

    # ----------------------------------------------------------- inspection
    @property
    def groups(self) -> list[Group]:
        """``(task, class)`` groups held, in the order they were first seen."""
        return list(self._groups)

    def group_sizes(self) -> dict[Group, int]:
        """Stored images of each group (what the budget counts)."""
        return {g: len(v) for g, v in self._groups.items()}

    def stored_group(self, group: Group) -> StoredGroup:
        """A copy of one group's stored rows (images, soft labels, formation factor)."""
        return self._groups[group].clone()

    def __len__(self) -> int:
        """Stored images (each of the input's size); replay may expand them (see :meth:`replay_tensors`)."""
        return sum(self.group_sizes().values())

    @property
    def nbytes(self) -> int:
        """Bytes of the stored images, at most ``max_size`` images of the input's size (labels not counted)."""
        return sum(v.nbytes for v in self._groups.values())

    @property
    def label_nbytes(self) -> int:
        """Bytes of the labels: class and task label per stored image, plus learned soft labels."""
        soft = sum(v.soft_labels.numel() * v.soft_labels.element_size() for v in self._groups.values()
                   if v.soft_labels is not None)
        return 16 * len(self) + soft

    @property
    def has_soft_labels(self) -> bool:
        return any(v.soft_labels is not None for v in self._groups.values())

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, class labels, task labels)`` of the stored rows (CPU; formations not expanded)."""
        return _flatten(self._groups, self._image_shape)[:3]

    def replay_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What replay trains on: ``(images, class labels, task labels, targets)`` with
        formations expanded; ``targets`` are ``(n, K)`` probabilities (softmax of the
        learned soft labels, one-hot rows for hard-label groups), or ``None`` when no
        group has soft labels. ``K`` is one more than the largest class held."""
        return _expanded(self._groups, self._image_shape)

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
        # current training images (formations expanded) together with the new samples.
        x, y, t = data.x, data.y, data.t
        repeat = [g for g in new_groups if g in self._groups]
        if repeat:
            old = {g: self._groups[g] for g in repeat}
            ox, oy, ot, _ = _expanded(old, shape)
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

    def _shrink(self, groups: dict[Group, StoredGroup], shares: dict[Group, int], device: str) -> dict[Group, StoredGroup]:
        over = {g: shares[g] for g, v in groups.items() if len(v) > shares[g]}
        if not over:
            return dict(groups)
        seed = self.seed + 1000 + self.updates
        smaller: dict[Group, StoredGroup] = {}
        # Groups stored in different formations are different kinds of rows: resized apart.
        for factor in sorted({groups[g].formation_factor for g in over}):
            part = {g: n for g, n in over.items() if groups[g].formation_factor == factor}
            x, y, t = _flatten({g: groups[g] for g in part}, None)[:3]
            key = "resize:" + _cache_key(x, y, t, part, self.resize_method, self.resize_kwargs, seed, "keep")
            if self.cache is not None and key in self.cache:
                smaller.update({g: v.clone() for g, v in self.cache[key].items()})
                continue
            made = condense_groups(
                x, y, t, part, self.resize_method, self.resize_kwargs,
                seed=seed, device=device, show_progress=self.show_progress,
                small_classes="keep", what="buffer resize",
            )
            made = {g: _carry_over(groups[g], v) for g, v in made.items()}
            if self.cache is not None:
                self.cache[key] = {g: v.clone() for g, v in made.items()}
            smaller.update(made)
        return {g: smaller.get(g, v) for g, v in groups.items()}

    def _commit(self, groups: dict[Group, StoredGroup], shape: tuple[int, ...] | None) -> None:
        groups = {g: v.detached() for g, v in groups.items()}
        stored = sum(len(v) for v in groups.values())
        if stored > self.max_size:  # an invariant, not an input error
            raise AssertionError(f"buffer would hold {stored} images, over its budget of {self.max_size}")
        if shape is not None and any(tuple(v.images.shape[1:]) != tuple(shape) for v in groups.values()):
            raise AssertionError(f"every stored image must have the input's shape {tuple(shape)}")
        x, y, t, _ = _expanded(groups, shape)
        dataset = _avalanche_dataset(x, y, t)
        self._groups = groups
        self._image_shape = shape
        self.buffer = dataset

    def training_dataset(self) -> Any:
        """The buffer as an Avalanche dataset for training on it alone (buffer-only mode):
        items ``(x, y, t)`` as :attr:`buffer`, or ``(x, y, target, t)`` with the soft
        target probabilities when a group has learned soft labels."""
        x, y, t, targets = self.replay_tensors()
        if targets is None:
            return self.buffer
        return _avalanche_dataset(x, y, t, targets)

    # --------------------------------------------------------- save / load
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The buffer as plain arrays (what :meth:`save` writes)."""
        x, y, t, factors, soft, has_soft = _flatten(self._groups, self._image_shape)
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
        arrays = {"images": x.numpy(), "labels": y.numpy(), "task_labels": t.numpy(),
                  "formation_factors": factors.numpy(), "state_json": np.array(json.dumps(config))}
        if soft is not None:
            arrays["soft_labels"] = soft.numpy()
            arrays["has_soft_labels"] = has_soft.numpy()
        return arrays

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
            factors = (torch.from_numpy(np.array(arrays["formation_factors"], dtype=np.int64))
                       if "formation_factors" in arrays else torch.ones(x.shape[0], dtype=torch.long))
            soft = torch.from_numpy(np.array(arrays["soft_labels"], dtype=np.float32)) if "soft_labels" in arrays else None
            has_soft = torch.from_numpy(np.array(arrays["has_soft_labels"], dtype=bool)) if soft is not None else None
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
        if factors.shape != (x.shape[0],) or (soft is not None and (
                soft.dim() != 2 or soft.shape[0] != x.shape[0] or has_soft is None or has_soft.shape != (x.shape[0],))):
            raise InvalidDataError(f"{path}: formation factors or soft labels do not match the images")
        try:
            loaded = {g: _group_from_rows(x, factors, soft, has_soft, (t == g[0]) & (y == g[1])) for g in groups}
        except CondenseError as exc:
            raise InvalidDataError(f"{path}: {exc}") from exc
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


def _flatten(
    groups: dict[Group, StoredGroup], shape: tuple[int, ...] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Stored rows of all groups: images, class labels, task labels, formation factors,
    soft-label logits padded to one width (``None`` if no group has any) and which rows have them."""
    if not groups:
        empty_shape = (0, *(shape or (1, 1, 1)))
        none = torch.zeros(0, dtype=torch.long)
        return torch.zeros(empty_shape), none, none, none, None, torch.zeros(0, dtype=torch.bool)
    vs = list(groups.values())
    xs = [v.images for v in vs]
    ys = [torch.full((len(v),), g[1], dtype=torch.long) for g, v in groups.items()]
    ts = [torch.full((len(v),), g[0], dtype=torch.long) for g, v in groups.items()]
    fs = [torch.full((len(v),), v.formation_factor, dtype=torch.long) for v in vs]
    has = torch.cat([torch.full((len(v),), v.soft_labels is not None) for v in vs])
    soft = None
    if has.any():
        width = max(v.soft_labels.shape[1] for v in vs if v.soft_labels is not None)
        soft = torch.cat([pad_logits(v.soft_labels, width) if v.soft_labels is not None
                          else torch.zeros(len(v), width) for v in vs])
    return torch.cat(xs).float(), torch.cat(ys), torch.cat(ts), torch.cat(fs), soft, has


def _group_from_rows(x: torch.Tensor, factors: torch.Tensor, soft: torch.Tensor | None, has_soft: torch.Tensor | None,
                     rows: torch.Tensor) -> StoredGroup:
    f = factors[rows].unique()
    if f.numel() != 1:
        raise CondenseError("a group's rows have different formation factors")
    group_soft = None
    if soft is not None and has_soft is not None and has_soft[rows].any():
        if not has_soft[rows].all():
            raise CondenseError("a group's rows mix soft and hard labels")
        group_soft = soft[rows]
    return StoredGroup(x[rows], group_soft, int(f))


def _expanded(
    groups: dict[Group, StoredGroup], shape: tuple[int, ...] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Training rows of all groups: formations expanded, soft targets as probabilities (or ``None``)."""
    if not groups:
        x, y, t = _flatten(groups, shape)[:3]
        return x, y, t, None
    xs, ys, ts = [], [], []
    for (task, cls), v in groups.items():
        xs.append(v.expanded()[0])
        ys.append(torch.full((v.replay_size,), cls, dtype=torch.long))
        ts.append(torch.full((v.replay_size,), task, dtype=torch.long))
    targets = None
    if any(v.soft_labels is not None for v in groups.values()):
        width = max([g[1] + 1 for g in groups] + [v.soft_labels.shape[1] for v in groups.values() if v.soft_labels is not None])
        targets = soft_targets([(v, g[1]) for g, v in groups.items()], width)
    return torch.cat(xs).float(), torch.cat(ys), torch.cat(ts), targets


def _carry_over(old: StoredGroup, new: StoredGroup) -> StoredGroup:
    """A resized group: the old group's formation and, unless the resize method learned
    its own, the soft label of each new row's nearest old row (exact for a selection)."""
    if old.formation_factor > 1 and new.formation_factor > 1:
        raise CondenseError(
            f"the resize method packs images into a formation, but this group is already stored in one "
            f"(factor {old.formation_factor}); resize with a method that keeps images (herding, random, dm, ...)"
        )
    factor = max(old.formation_factor, new.formation_factor)
    soft = new.soft_labels
    if soft is None and old.soft_labels is not None:
        nearest = torch.cdist(new.images.flatten(1).double(), old.images.flatten(1).double()).argmin(1)
        soft = old.soft_labels[nearest].clone()
    return StoredGroup(new.images, soft, factor)


def _avalanche_dataset(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, targets: torch.Tensor | None = None) -> Any:
    """Items ``(x, y, t)``, the layout of the experiences' items (``(x, y, target, t)`` with soft targets)."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from avalanche.benchmarks.utils.utils import concat_datasets

    if x.shape[0] == 0:
        return concat_datasets([])
    tensors = (x, y) if targets is None else (x, y, targets)
    return _make_taskaware_tensor_classification_dataset(*tensors, task_labels=t.tolist(), targets=y.tolist())


def _cache_key(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, targets: dict[Group, int], method: str,
               kwargs: dict[str, Any], seed: int, small: str) -> str:
    h = hashlib.sha256()
    for v in (x, y, t):
        h.update(str(tuple(v.shape)).encode())
        h.update(v.contiguous().numpy().tobytes())
    h.update(json.dumps([sorted([list(g), n] for g, n in targets.items()), method, json_safe(kwargs), seed, small],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()
