"""Condensed sets a benchmark keeps on disk, so a long run cut short is not condensed again.

A condensation of 2,000 DM steps at IPC 50 takes longer on 2 CPU cores than
its evaluation, and both together can outlast a working session. With a
store, each set is written (``SyntheticSet.save``: ``.npz``, no pickle,
atomic) as soon as it exists; a later run with the same store evaluates it
instead of condensing again. A distillation run also keeps its checkpoint
(:mod:`condense.checkpoint`) in the store while it runs, so a run killed
midway continues from its last save. The set's ``meta["benchmark"]`` records what
made it (data, method, IPC, seed, steps, hyperparameters) and the
condensation's time and peak memory, so the results table stays honest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from condense.api import make_condenser
from condense.methods.base import result_hyperparameters
from condense.serialization import json_safe
from condense.synthetic_set import SyntheticSet


class SavedSets:
    """Benchmark sets under ``root``, one ``.npz`` per (data, method, IPC, seed, step, run length).

    A key is a dict with ``data``, ``method``, ``ipc``, ``seed``, ``step``
    (the snapshot's step; 0 for selections), ``run_steps`` (the run's
    length) and ``params``; snapshots of a long run and the final set of a
    short one get different files.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: dict[str, Any]) -> Path:
        return self.root / "{data}_{method}_ipc{ipc}_seed{seed}_step{step}of{run_steps}.npz".format(**key)

    def checkpoint_path(self, key: dict[str, Any]) -> Path:
        """Where a distillation run for ``key`` keeps its resumable state (:mod:`condense.checkpoint`).

        The name leaves out the run's length, so a longer run with otherwise
        equal settings continues a shorter one; the hyperparameters but ``steps``
        are in it as a digest, so other settings never meet this file.
        """
        params = {k: v for k, v in key["params"].items() if k != "steps"}
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        return self.root / "{data}_{method}_ipc{ipc}_seed{seed}_{digest}.ckpt.npz".format(**key, digest=digest)

    def save(self, syn: SyntheticSet, key: dict[str, Any], seconds: float, peak_mib: float) -> Path:
        """Write ``syn`` with ``key`` (what made it) and its condensation cost in its meta."""
        record = {"key": _canonical(key), "seconds": seconds, "peak_mib": peak_mib}
        stored = dataclasses.replace(syn, meta={**syn.meta, "benchmark": record})
        self.root.mkdir(parents=True, exist_ok=True)
        return stored.save(self.path(key))

    def load(self, key: dict[str, Any]) -> tuple[SyntheticSet, float, float] | None:
        """The saved set for ``key`` with its condensation seconds and peak MiB, or ``None``.

        ``None`` when no file exists or the file was made with other
        hyperparameters (it is then condensed again and overwritten). A file
        that is not a valid set raises ``InvalidSyntheticSetError`` naming it.
        """
        path = self.path(key)
        if not path.exists():
            return None
        syn = SyntheticSet.load(path)
        record = syn.meta.get("benchmark")
        if not isinstance(record, dict) or record.get("key") != _canonical(key):
            return None
        if not _same_resolved_hyperparameters(syn, key):
            return None
        return syn, float(record["seconds"]), float(record["peak_mib"])


def _canonical(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(key, sort_keys=True))


def _same_resolved_hyperparameters(syn: SyntheticSet, key: dict[str, Any]) -> bool:
    """Whether the set was made with every hyperparameter ``key`` resolves to today.

    A key holds only the parameters passed on the command line; when a
    method's default changes, an old set made under the old default would
    otherwise pass for a new one. The set records all its hyperparameters
    (``meta["hyperparameters"]``), so compare those with the method's
    current resolution of the key. Sets without that record (older files,
    tests) are judged by the key alone.
    """
    recorded = syn.meta.get("hyperparameters")
    if not isinstance(recorded, dict):
        return True
    try:
        method = make_condenser(key["method"], ipc=key["ipc"], seed=key["seed"], **key["params"])
    except (KeyError, ValueError):  # a method or parameter that no longer exists (CondenseError is a ValueError)
        return False
    today = json_safe(method.get_params())
    return _canonical(result_hyperparameters(recorded)) == _canonical(result_hyperparameters(today))
