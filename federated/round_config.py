"""What the server sends a client for one round: only what that round needs.

A client never receives the server's whole :class:`~condense.federated.FLConfig`
(its data paths, timeouts, report files): it gets a :class:`RoundConfig` as
one ``ConfigRecord`` (``config`` in the message) and takes everything local
(its data, device, threads) from its own context (:mod:`.client_settings`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ConfigRecord

from condense.errors import CondenseError
from condense.normalization import Normalization


class InvalidRoundConfigError(CondenseError):
    """A round configuration a client cannot use (missing or mistyped entries)."""


@dataclass
class RoundConfig:
    """One round's instructions.

    Attributes:
        server_round: the round number (seeds the client's condensation).
        num_classes: classes of the task (labels and model heads).
        method, ipc, method_kwargs: what to condense with (``method_kwargs`` are
            the method's hyperparameters, passed as they are).
        seed: the run's seed.
        encoding: how the synthetic set travels back.
        feddm_radius: multi-round: noise around the received global weights (negative: no global model).
        model, model_kwargs: the global model (FedAvg training, FedDM sampling).
        normalization: the server's ``{"mean": [...], "std": [...]}``, or ``None``.
        local_epochs, local_lr, local_batch: local training of the global model (``train`` messages).
        distill: a ``train`` message also asks for a synthetic set (hybrid round 1).
    """

    server_round: int
    num_classes: int
    method: str
    ipc: int
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    encoding: str = "float16"
    feddm_radius: float = 0.01
    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, list[float]] | None = None
    local_epochs: int = 1
    local_lr: float = 0.01
    local_batch: int = 32
    distill: bool = False

    def to_record(self) -> ConfigRecord:
        """The ConfigRecord a message carries (mappings as JSON strings)."""
        return ConfigRecord({
            "server-round": self.server_round,
            "num-classes": self.num_classes,
            "method": self.method,
            "ipc": self.ipc,
            "method-kwargs": json.dumps(self.method_kwargs, sort_keys=True),
            "seed": self.seed,
            "encoding": self.encoding,
            "feddm-radius": float(self.feddm_radius),
            "model": self.model,
            "model-kwargs": json.dumps(self.model_kwargs, sort_keys=True),
            "normalization": json.dumps(self.normalization),
            "local-epochs": self.local_epochs,
            "local-lr": float(self.local_lr),
            "local-batch": self.local_batch,
            "distill": bool(self.distill),
        })

    @classmethod
    def from_record(cls, record: ConfigRecord) -> "RoundConfig":
        """Read a record written by :meth:`to_record`; raises :class:`InvalidRoundConfigError`."""
        try:
            out = cls(
                server_round=_int(record, "server-round"),
                num_classes=_int(record, "num-classes"),
                method=str(record["method"]),
                ipc=_int(record, "ipc"),
                method_kwargs=_mapping(record, "method-kwargs"),
                seed=_int(record, "seed"),
                encoding=str(record["encoding"]),
                feddm_radius=_float(record, "feddm-radius"),
                model=str(record["model"]),
                model_kwargs=_mapping(record, "model-kwargs"),
                normalization=json.loads(str(record["normalization"])),
                local_epochs=_int(record, "local-epochs"),
                local_lr=_float(record, "local-lr"),
                local_batch=_int(record, "local-batch"),
                distill=bool(record.get("distill", False)),
            )
        except KeyError as exc:
            raise InvalidRoundConfigError(f"round config misses {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise InvalidRoundConfigError(f"round config is malformed ({exc})") from exc
        if out.normalization is not None:
            norm = out.normalization
            if not isinstance(norm, dict) or not {"mean", "std"} <= set(norm):
                raise InvalidRoundConfigError("round config: normalization must be {'mean': [...], 'std': [...]}")
        return out

    def server_normalization(self) -> Normalization | None:
        """The normalization the server chose for the run."""
        if not self.normalization:
            return None
        return Normalization(tuple(self.normalization["mean"]), tuple(self.normalization["std"]))


def _int(record: ConfigRecord, key: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{key}' must be an integer, got {value!r}")
    return value


def _float(record: ConfigRecord, key: str) -> float:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"'{key}' must be a finite number, got {value!r}")
    return float(value)


def _mapping(record: ConfigRecord, key: str) -> dict[str, Any]:
    value = json.loads(str(record[key]))
    if not isinstance(value, dict):
        raise TypeError(f"'{key}' must be a JSON object")
    return value
