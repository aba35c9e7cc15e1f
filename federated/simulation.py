"""Run a federated experiment on Flower's Simulation Engine (Ray) from Python."""

from __future__ import annotations

import dataclasses
import logging
import os

from condense.federated.client import build_client_app
from condense.federated.config import FLConfig, InvalidFLConfigError
from condense.federated.report import FLReport
from condense.federated.server import build_server_app


def simulate(
    cfg: FLConfig,
    client_app=None,  # noqa: ANN001
    max_parallel: int = 1,
    verbose: bool = False,
    num_gpus_per_client: float = 0.0,
    client_device: str | None = None,
    server_device: str | None = None,
    client_threads: int | None = None,
) -> FLReport:
    """``run_simulation`` with ``cfg.num_clients`` virtual SuperNodes; returns the server's report.
    See :func:`simulate_many` for the arguments.
    """
    return simulate_many([cfg], client_app, max_parallel, verbose, num_gpus_per_client, client_device, server_device,
                         client_threads)[0]


def simulate_many(
    configs: list[FLConfig],
    client_app=None,  # noqa: ANN001
    max_parallel: int = 1,
    verbose: bool = False,
    num_gpus_per_client: float = 0.0,
    client_device: str | None = None,
    server_device: str | None = None,
    client_threads: int | None = None,
) -> list[FLReport]:
    """Several runs, one after the other, in one ``run_simulation`` (Ray starts once).

    All configs must have the same ``num_clients``.

    Args:
        max_parallel: how many ClientApps run at once (Ray CPUs, one per client).
        num_gpus_per_client: Ray GPUs reserved by each ClientApp (e.g. 0.5: two
            clients share a GPU); the Ray cluster gets ``max_parallel`` times that.
        client_device, server_device: where clients condense and train, and where
            the server trains and evaluates (default: each config's ``device``).
        client_threads: torch threads per client (default: each config's ``threads``).
        client_app: replaces the default one (tests use it to inject failing
            clients); the default one is built with these client settings and the
            first config's data and partitioning (a simulated client's own settings).
    """
    from flwr.simulation import run_simulation

    if num_gpus_per_client < 0 or max_parallel < 1:
        raise InvalidFLConfigError(f"num_gpus_per_client must be >= 0 and max_parallel >= 1, got {num_gpus_per_client}, {max_parallel}")
    if server_device is not None:
        configs = [dataclasses.replace(cfg, device=server_device) for cfg in configs]
    for cfg in configs:
        cfg.validate()
    if len({cfg.num_clients for cfg in configs}) != 1:
        raise ValueError("simulate_many needs the same num_clients in every config")
    data_keys = {(c.data, c.root, c.partitioner, c.alpha, c.min_partition_size, c.seed) for c in configs}
    if client_app is None and len(data_keys) != 1:
        raise ValueError("simulate_many's clients hold one partition: give every config the same data, partitioning and seed")
    first = configs[0]
    sink: list[FLReport] = []
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    defaults = first.client_settings(device=client_device or first.device, threads=client_threads or first.threads)
    gpus = float(num_gpus_per_client)
    run_simulation(
        server_app=build_server_app(list(configs), sink),
        client_app=client_app or build_client_app(defaults=defaults),
        num_supernodes=first.num_clients,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": gpus},
            "init_args": {"num_cpus": max_parallel, "num_gpus": gpus * max_parallel, "include_dashboard": False},
        },
        verbose_logging=verbose,
    )
    if len(sink) != len(configs):
        raise RuntimeError(
            f"{len(configs) - len(sink)} federated run(s) ended without a report (see the log above for the ServerApp error)"
        )
    return sink
