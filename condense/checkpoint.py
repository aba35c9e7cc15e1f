"""Resumable distillation: the loop's whole state in one ``.npz`` file (no pickle).

A run of thousands of distillation steps can outlast a machine, a job slot or
a working session. ``fit(data, checkpoint=PATH)`` makes the loop write its
state every ``checkpoint_every`` steps and after the last one, atomically (a
crash while writing keeps the previous file), and a later ``fit`` with the same
path continues from the step saved there. On the CPU the continued run ends
with exactly the set an uninterrupted run gives.

Saved: the step reached, the losses so far, the condensation time so far, and
:meth:`condense.loop_state.LoopState.state_dict`: the synthetic images and
every other learned tensor (labels, step sizes) by name with their optimizer
state, the random generators (the loop's, the network sampler's and the
method's; per-step draws are derived from the seed and the step), and the
networks a sampler trains along the way (DC/DSA, IDM).

The file also records what made it: method, IPC, seed, hyperparameters and the
source data's fingerprint. Resuming anything else raises
:class:`InvalidCheckpointError` naming the differences; only ``steps`` may
differ, so a finished run resumed with more steps goes on from where it ended.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condense.errors import CondenseError
from condense.serialization import npy_member_header, write_npz_atomic

FORMAT_VERSION = 2  # 2: the LoopState's state (named learned tensors, no global generator)
# Hostile headers could ask for any size: refuse files whose arrays would take more than this.
MAX_LOAD_BYTES = 8 * 1024**3
# Array names are ours (``param.0``, ``sampler.queue.3.weight`` ...): anything else is refused.
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
_META = "meta_json"

StateDict = dict[str, torch.Tensor]


class InvalidCheckpointError(CondenseError):
    """A checkpoint file is malformed, or was made by a different run than the one resuming it."""


@dataclass
class LoopCheckpoint:
    """The state of a distillation loop after ``step`` steps.

    Attributes:
        step: steps completed.
        identity: what made the run (method, hyperparameters, data); compared on resume.
        losses: the objective's value at every completed step.
        elapsed_seconds: condensation time spent so far, over every resumed part.
        arrays: named tensors (images, optimizer state, generators, networks).
    """

    step: int
    identity: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    arrays: StateDict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write atomically (uncompressed: it is rewritten often and read rarely)."""
        header = {"format_version": FORMAT_VERSION, "step": self.step, "identity": self.identity,
                  "losses": self.losses, "elapsed_seconds": self.elapsed_seconds}
        arrays = {name: t.detach().cpu().numpy() for name, t in self.arrays.items()}
        arrays[_META] = np.array(json.dumps(header))
        return write_npz_atomic(path, arrays, compressed=False)

    @classmethod
    def load(cls, path: str | Path) -> "LoopCheckpoint":
        """Read a file written by :meth:`save`; anything malformed or pickled is refused."""
        path = Path(path)
        if not zipfile.is_zipfile(path):
            raise InvalidCheckpointError(f"{path}: not a readable checkpoint (not an .npz archive)")
        try:
            with np.load(path, allow_pickle=False) as npz:
                names = _checked_members(npz.zip, path)
                raw = {name: npz[name] for name in names}
        except InvalidCheckpointError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
            raise InvalidCheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
        header = _checked_header(raw.pop(_META), path)
        return cls(
            step=header["step"], identity=header["identity"], losses=[float(v) for v in header["losses"]],
            elapsed_seconds=float(header["elapsed_seconds"]),
            arrays={name: torch.from_numpy(np.array(a)) for name, a in raw.items()},
        )

    def check_identity(self, expected: dict[str, Any], path: str | Path) -> None:
        """Raise :class:`InvalidCheckpointError` unless the file was made by a run like ``expected``."""
        wanted = json.loads(json.dumps(expected))  # as it reads back from JSON
        keys = sorted(set(wanted) | set(self.identity))
        differ = [k for k in keys if wanted.get(k) != self.identity.get(k)]
        if differ:
            detail = "; ".join(_difference(k, self.identity.get(k), wanted.get(k)) for k in differ)
            raise InvalidCheckpointError(
                f"{path} was written by a different run ({detail}); use another checkpoint path or delete the file"
            )


def take(arrays: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix`` (a trailing ``.`` included), with the prefix removed."""
    return {name[len(prefix):]: t for name, t in arrays.items() if name.startswith(prefix)}


def prefixed(arrays: StateDict, prefix: str) -> StateDict:
    """``arrays`` with ``prefix`` in front of every name."""
    return {prefix + name: t for name, t in arrays.items()}


def optimizer_state(opt: torch.optim.Optimizer) -> StateDict:
    """Per-parameter optimizer tensors (SGD momentum, Adam moments), keyed by parameter position."""
    out: StateDict = {}
    for i, p in enumerate(p for group in opt.param_groups for p in group["params"]):
        for name, value in opt.state.get(p, {}).items():
            if isinstance(value, torch.Tensor):
                out[f"{i}.{name}"] = value.detach().cpu().clone()
    return out


def load_optimizer_state(opt: torch.optim.Optimizer, arrays: StateDict) -> None:
    """Put tensors saved by :func:`optimizer_state` back into ``opt`` (shapes checked)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    opt.state.clear()
    for key, value in arrays.items():
        index, _, name = key.partition(".")
        if not index.isdigit() or int(index) >= len(params) or not name:
            raise InvalidCheckpointError(f"optimizer state '{key}' names no parameter of this run")
        p = params[int(index)]
        if value.dim() > 0 and value.shape != p.shape:  # per-element state (momentum, moments); scalars such as Adam's step pass
            raise InvalidCheckpointError(f"optimizer state '{key}' has shape {tuple(value.shape)}, the parameter {tuple(p.shape)}")
        opt.state[p][name] = value.to(p.device).clone()


def load_module_state(module: torch.nn.Module, arrays: StateDict, what: str) -> None:
    """``module.load_state_dict(arrays)`` with an :class:`InvalidCheckpointError` naming ``what``."""
    try:
        module.load_state_dict(arrays, strict=True)
    except RuntimeError as exc:
        raise InvalidCheckpointError(f"{what} does not fit this run's network ({str(exc).splitlines()[0]})") from exc


def require(arrays: StateDict, name: str) -> torch.Tensor:
    """``arrays[name]``, or an :class:`InvalidCheckpointError` saying it is missing."""
    if name not in arrays:
        raise InvalidCheckpointError(f"the checkpoint lacks '{name}'")
    return arrays[name]


def set_generator_state(gen: torch.Generator, state: torch.Tensor, what: str) -> None:
    """``gen.set_state(state)`` with a named error for a state of the wrong kind."""
    try:
        gen.set_state(state.to(torch.uint8))
    except RuntimeError as exc:
        raise InvalidCheckpointError(f"{what}: not a generator state ({exc})") from exc


def _checked_members(zf: zipfile.ZipFile, path: Path) -> list[str]:
    names = zf.namelist()
    if len(set(names)) != len(names):
        raise InvalidCheckpointError(f"{path}: the archive names a member twice")
    keys, total = [], 0
    for member in names:
        key = member[: -len(".npy")] if member.endswith(".npy") else ""
        if not _ARRAY_NAME.fullmatch(key):
            raise InvalidCheckpointError(f"{path}: unexpected member {member[:80]!r}")
        try:
            total += npy_member_header(zf, member)[2]
        except ValueError as exc:
            raise InvalidCheckpointError(f"{path}: member '{key}' refused ({exc})") from exc
        keys.append(key)
    if _META not in keys:
        raise InvalidCheckpointError(f"{path}: missing '{_META}'")
    if total > MAX_LOAD_BYTES:
        raise InvalidCheckpointError(f"{path}: the arrays would need {total} bytes, over the {MAX_LOAD_BYTES} limit")
    return keys


def _checked_header(raw: np.ndarray, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(str(raw))
    except ValueError as exc:
        raise InvalidCheckpointError(f"{path}: {_META} is not JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        raise InvalidCheckpointError(f"{path}: not a condense checkpoint of format {FORMAT_VERSION}")
    step, losses, seconds = header.get("step"), header.get("losses"), header.get("elapsed_seconds")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise InvalidCheckpointError(f"{path}: step must be an integer >= 0, got {step!r}")
    if not isinstance(losses, list) or len(losses) != step or not all(isinstance(v, (int, float)) for v in losses):
        raise InvalidCheckpointError(f"{path}: losses must be {step} numbers")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise InvalidCheckpointError(f"{path}: elapsed_seconds must be a finite number >= 0")
    if not isinstance(header.get("identity"), dict):
        raise InvalidCheckpointError(f"{path}: identity must be a JSON object")
    return header


def _difference(key: str, saved: Any, wanted: Any) -> str:
    if isinstance(saved, dict) and isinstance(wanted, dict):
        inner = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        return f"{key}: " + ", ".join(f"{k} {saved.get(k)!r} in the file, {wanted.get(k)!r} now" for k in inner)
    return f"{key} {saved!r} in the file, {wanted!r} now"
