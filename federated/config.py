"""Every setting of a federated run, in one dataclass that travels to the clients as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from condense.errors import CondenseError

# methods whose sets pack several smaller images into each stored one (IDM multi-formation)
FORMATION_METHODS = ("idm",)
STRATEGIES = ("fedavg", "oneshot", "multiround", "hybrid")
PARTITIONERS = ("iid", "dirichlet")
CONFIG_JSON_KEY = "fl-config-json"  # key inside the ConfigRecord sent to clients


class InvalidFLConfigError(CondenseError):
    """A federated-run setting is out of range."""


@dataclass
class FLConfig:
    """Settings of one federated run (server and clients read the same object).

    Data: ``data``/``root`` as for :func:`condense.load_dataset`; the training
    split is partitioned over ``num_clients`` with ``partitioner`` (``iid`` or
    ``dirichlet`` with ``alpha``; flwr-datasets redraws until every client
    holds ``min_partition_size`` samples). A SuperNode whose ``node_config``
    has ``data-path`` (an ``.npz`` with ``x_train``/``y_train``) uses its own
    data instead.

    Condensation (clients): ``method`` from the registry with ``ipc``,
    ``steps`` and ``batch_real`` (where the method takes them), payload
    ``encoding``. Classes with fewer than ``ipc`` local samples are not
    condensed (they are reported as skipped). Multi-round clients match
    embeddings under the received global weights plus Gaussian noise of
    ``feddm_radius`` x each tensor's RMS (FedDM-style).

    Model: ``model`` with ``width``/``depth`` for every strategy. Local training
    (FedAvg, hybrid): ``local_epochs``, ``local_lr``, ``local_batch``.
    Server training on synthetic sets: ``server_epochs`` at batch
    ``server_batch`` (one-shot and multi-round, with DSA), ``hybrid_epochs`` (hybrid fine-tuning per round).

    Robustness: the run waits up to ``timeout`` seconds for all
    ``num_clients`` nodes to connect and starts with at least ``min_clients``;
    each round waits at most ``timeout`` seconds for replies and keeps the
    previous model when fewer than ``min_clients`` usable replies arrive. ``max_payload_bytes`` (default:
    a full float32 set plus 25%) caps one reply. ``report_path``: the server
    rewrites its report there (JSON, atomically) after every round, so a run
    stopped early keeps what it measured.
    """

    data: str = "digits"
    root: str | None = None
    num_clients: int = 10
    partitioner: str = "dirichlet"
    alpha: float = 0.1
    min_partition_size: int = 10
    strategy: str = "oneshot"
    rounds: int = 1
    ipc: int = 10
    method: str = "dm"
    steps: int = 200
    batch_real: int = 64
    encoding: str = "float16"
    feddm_radius: float = 0.01
    model: str = "convnet"
    width: int = 32
    depth: int = 3
    local_epochs: int = 1
    local_lr: float = 0.01
    local_batch: int = 32
    server_epochs: int = 300
    server_lr: float = 0.01
    server_batch: int = 64
    hybrid_epochs: int = 5
    min_clients: int = 2
    timeout: float = 3600.0
    max_payload_bytes: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    normalization: dict[str, list[float]] | None = field(default=None)
    report_path: str | None = None

    def validate(self) -> "FLConfig":
        """Raise :class:`InvalidFLConfigError` naming the first bad setting."""
        if self.strategy not in STRATEGIES:
            raise InvalidFLConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.partitioner not in PARTITIONERS:
            raise InvalidFLConfigError(f"partitioner must be one of {', '.join(PARTITIONERS)}, got '{self.partitioner}'")
        if self.num_clients < 1:
            raise InvalidFLConfigError(f"num_clients must be >= 1, got {self.num_clients}")
        if self.partitioner == "dirichlet" and not self.alpha > 0:
            raise InvalidFLConfigError(f"alpha must be > 0, got {self.alpha}")
        if self.rounds < 1:
            raise InvalidFLConfigError(f"rounds must be >= 1, got {self.rounds}")
        if self.ipc < 1:
            raise InvalidFLConfigError(f"ipc must be >= 1, got {self.ipc}")
        if not 1 <= self.min_clients <= self.num_clients:
            raise InvalidFLConfigError(f"min_clients must lie in 1..num_clients={self.num_clients}, got {self.min_clients}")
        if self.timeout <= 0:
            raise InvalidFLConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        from condense.federated.payload import ENCODINGS

        if self.encoding not in ENCODINGS:
            raise InvalidFLConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got '{self.encoding}'")
        if self.method in FORMATION_METHODS:
            raise InvalidFLConfigError(
                f"method '{self.method}' stores its images in a compressed formation, which a synthetic-set payload "
                "does not carry; choose another method"
            )
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FLConfig":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> "FLConfig":
        """From a ``flwr run`` run config (``[tool.flwr.app.config]``, dashes or underscores)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name in known:
                values[name] = None if value == "" and name in ("root", "max_payload_bytes", "report_path") else value
        return cls(**values)
