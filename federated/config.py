"""Every setting of a federated run, in one dataclass the server (and a simulation driver) reads.

Clients never receive it: the server sends each round a
:class:`~condense.federated.round_config.RoundConfig` (what the round needs),
and a client takes its data, device and threads from its own context
(:class:`~condense.federated.client_settings.ClientSettings`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from condense.errors import CondenseError

STRATEGIES = ("fedavg", "oneshot", "multiround", "hybrid")
PARTITIONERS = ("iid", "dirichlet")
# Settings that became entries of ``method_kwargs`` (a run config naming them gets a pointer there).
MOVED_TO_METHOD_KWARGS = ("steps", "batch_real")


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

    Condensation (clients): ``method`` from the registry with ``ipc`` and
    ``method_kwargs`` (the method's hyperparameters, e.g. ``{"steps": 200,
    "batch_real": 64, "model_kwargs": {"width": 32}}``; nothing else is
    copied into the method), payload ``encoding``. Classes with fewer local
    samples than the method needs (``ipc``, or more for a method that packs
    several real images into one) are not condensed (reported as skipped). Multi-round clients match
    embeddings under the received global weights plus Gaussian noise of
    ``feddm_radius`` x each tensor's RMS (FedDM-style).

    Model: the global ``model`` with ``width``/``depth`` for every strategy. Local training
    (FedAvg, hybrid): ``local_epochs``, ``local_lr``, ``local_batch``.
    Server training on synthetic sets: ``server_epochs`` at batch
    ``server_batch`` (one-shot and multi-round, with DSA), ``hybrid_epochs`` (hybrid fine-tuning per round).

    Robustness: the run waits up to ``timeout`` seconds for all
    ``num_clients`` nodes to connect and starts with at least ``min_clients``;
    each round waits at most ``timeout`` seconds for replies and keeps the
    previous model when fewer than ``min_clients`` usable replies arrive. ``device`` and ``threads``
    are the server's; clients choose their own. ``max_payload_bytes`` (default:
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
    method_kwargs: dict[str, Any] = field(default_factory=dict)
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
        if not isinstance(self.method_kwargs, dict):
            raise InvalidFLConfigError(f"method_kwargs must be a mapping, got {type(self.method_kwargs).__name__}")
        if self.strategy == "fedavg":  # no client condenses
            return self
        from condense.registry import get_method

        taken = set(get_method(self.method).cls._param_names())  # an unknown method raises UnknownMethodError
        unknown = sorted(set(self.method_kwargs) - taken)
        if unknown:
            raise InvalidFLConfigError(f"method '{self.method}' takes no parameter(s) {unknown}; it takes {sorted(taken)}")
        fixed = sorted({"ipc", "seed", "device", "show_progress"} & set(self.method_kwargs))
        if fixed:
            raise InvalidFLConfigError(f"method_kwargs may not set {fixed}: the run sets them")
        return self

    def global_model_kwargs(self) -> dict[str, Any]:
        """Arguments of the global model (resnet has a fixed depth)."""
        return {"width": self.width} if self.model == "resnet" else {"width": self.width, "depth": self.depth}

    def round_config(self, server_round: int, num_classes: int, distill: bool = False):  # noqa: ANN201
        """The :class:`RoundConfig` the server sends for ``server_round``."""
        from condense.federated.round_config import RoundConfig

        return RoundConfig(
            server_round=server_round, num_classes=num_classes, method=self.method, ipc=self.ipc,
            method_kwargs=dict(self.method_kwargs), seed=self.seed, encoding=self.encoding,
            feddm_radius=self.feddm_radius, model=self.model, model_kwargs=self.global_model_kwargs(),
            normalization=self.normalization, local_epochs=self.local_epochs, local_lr=self.local_lr,
            local_batch=self.local_batch, distill=distill,
        )

    def client_settings(self, device: str | None = None, threads: int | None = None):  # noqa: ANN201
        """Default :class:`ClientSettings` for simulated clients of this run (data and partitioning)."""
        from condense.federated.client_settings import ClientSettings

        return ClientSettings(
            data=self.data, root=self.root, partitioner=self.partitioner, alpha=self.alpha,
            min_partition_size=self.min_partition_size, partition_seed=self.seed, num_partitions=self.num_clients,
            device=device or self.device, threads=threads or self.threads,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FLConfig":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> "FLConfig":
        """From a ``flwr run`` run config (``[tool.flwr.app.config]``, dashes or underscores).

        ``method-kwargs`` is a JSON object in a string (run-config values are
        scalars); keys the server does not know (a client's ``client-device``)
        are left to the clients.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name in MOVED_TO_METHOD_KWARGS:
                raise InvalidFLConfigError(
                    f"run config '{key}' is a method hyperparameter now: put it in method-kwargs, "
                    f"e.g. method-kwargs = '{{\"{name}\": {value!r}}}'"
                )
            if name == "method_kwargs":
                try:
                    value = json.loads(value) if isinstance(value, str) and value.strip() else (value or {})
                except ValueError as exc:
                    raise InvalidFLConfigError(f"run config method-kwargs is not a JSON object ({exc})") from exc
            if name in known:
                values[name] = None if value == "" and name in ("root", "max_payload_bytes", "report_path") else value
        return cls(**values)
