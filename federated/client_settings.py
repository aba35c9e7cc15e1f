"""What a client decides for itself: its data, device and threads (never sent by the server).

Read from the client's own Flower context, most specific first:

1. ``context.node_config`` (``flower-supernode --node-config``; in simulation
   Flower sets ``partition-id`` and ``num-partitions``): ``data-path`` (an
   ``.npz`` of this node's own data), ``partition-id``, ``num-partitions``,
   ``device``, ``threads``;
2. ``context.run_config`` (``[tool.flwr.app.config]`` and ``--run-config``):
   ``data``, ``root``, ``partitioner``, ``alpha``, ``min-partition-size``,
   ``seed`` (the partition's), ``num-clients``, ``client-device``, ``client-threads``;
3. the defaults the ClientApp was built with (:func:`condense.federated.simulate`
   builds them from its arguments: the simulation driver configures its
   virtual clients, the server does not).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from condense.errors import CondenseError

# run-config key -> field, for the keys whose names differ
_RUN_KEYS = {"client-device": "device", "client-threads": "threads", "num-clients": "num_partitions",
             "seed": "partition_seed", "min-partition-size": "min_partition_size"}
_RUN_SAME = ("data", "root", "partitioner", "alpha")
_NODE_KEYS = {"data-path": "data_path", "partition-id": "partition_id", "num-partitions": "num_partitions",
              "device": "device", "threads": "threads"}


class InvalidClientSettingsError(CondenseError):
    """A client's own setting is unusable."""


@dataclass(frozen=True)
class ClientSettings:
    """A client's local settings (see the module docstring for where each comes from)."""

    data: str = "digits"
    root: str | None = None
    data_path: str | None = None
    partitioner: str = "dirichlet"
    alpha: float = 0.1
    min_partition_size: int = 10
    partition_seed: int = 0
    partition_id: int = 0
    num_partitions: int = 1
    device: str = "cpu"
    threads: int = 1

    def resolve(self, run_config: dict[str, Any], node_config: dict[str, Any]) -> "ClientSettings":
        """These defaults overridden by the run config, then by the node config."""
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = _RUN_KEYS.get(key, key.replace("-", "_") if key in _RUN_SAME else None)
            if name is not None:
                values[name] = value
        for key, value in node_config.items():
            if key in _NODE_KEYS:
                values[_NODE_KEYS[key]] = value
        for name in ("root", "data_path"):
            if values.get(name) == "":
                values[name] = None
        known = {f.name: f for f in fields(self)}
        try:
            for name in ("min_partition_size", "partition_seed", "partition_id", "num_partitions", "threads"):
                if name in values:
                    values[name] = int(values[name])
            if "alpha" in values:
                values["alpha"] = float(values["alpha"])
        except (TypeError, ValueError) as exc:
            raise InvalidClientSettingsError(f"client setting is not a number ({exc})") from exc
        out = replace(self, **{k: v for k, v in values.items() if k in known})
        if out.threads < 1 or not 0 <= out.partition_id < max(1, out.num_partitions):
            raise InvalidClientSettingsError(
                f"client settings out of range: threads {out.threads}, partition {out.partition_id} of {out.num_partitions}"
            )
        return out
