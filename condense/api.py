"""The two calls most users need: ``condense`` and ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from condense.errors import InvalidParameterError
from condense.normalization import Normalization
from condense.parameter_check import check_parameters
from condense.registry import get_method
from condense.synthetic_set import SyntheticSet


def make_condenser(method: str = "dm", **params: Any) -> Any:
    """An unfitted method object by registry name; unknown parameters or values of the wrong type raise
    :class:`condense.errors.InvalidParameterError`."""
    info = get_method(method)
    check_parameters(method, info.cls, params)
    return info.cls(**params)


def condense(
    data: Any,
    method: str = "dm",
    ipc: int = 10,
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    show_progress: bool = True,
    num_classes: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    method_kwargs: dict[str, Any] | None = None,
    normalization: Normalization | None = None,
    **params: Any,
) -> SyntheticSet:
    """Condense ``data`` into ``ipc`` images per class with the named method.

    ``data`` is ``(images, labels)`` tensors or arrays, a map-style torch
    ``Dataset`` or :class:`condense.data.TensorData`; use
    :func:`condense.data.load_dataset` for names and paths. Further keyword
    arguments are the method's hyperparameters (see ``condense methods``);
    ``method_kwargs`` carries them as one mapping (the style of ``CLConfig``
    and ``FLConfig``); a name given both ways raises ``ValueError``.
    ``normalization``: the per-channel normalization to condense in (shared by
    shards, streams or clients); ``None`` computes it once from ``data``. It is
    recorded in the set's ``normalization``.
    Every class present must hold at least ``ipc`` samples, else
    :class:`condense.errors.InsufficientSamplesError` names the classes short of it.

    ``checkpoint``: a file where a distillation run saves its state every
    ``checkpoint_every`` steps; calling again with the same file continues the
    run from there (on the CPU, to exactly the set an uninterrupted run gives).
    See :mod:`condense.checkpoint`.
    """
    if method_kwargs:
        if not isinstance(method_kwargs, dict):
            raise InvalidParameterError(f"method_kwargs must be a mapping, got {type(method_kwargs).__name__}")
        given = set(params) | {"ipc", "seed", "device", "show_progress"} | ({"steps"} if steps is not None else set())
        both = sorted(set(method_kwargs) & given)
        if both:
            raise ValueError(f"{both} given both in method_kwargs and as arguments of condense: give each once")
        params = {**method_kwargs, **params}
    if steps is not None:
        params["steps"] = steps
    condenser = make_condenser(method, ipc=ipc, seed=seed, device=device, show_progress=show_progress, **params)
    return condenser.condense(data, num_classes, normalization=normalization, checkpoint=checkpoint,
                              checkpoint_every=checkpoint_every)
