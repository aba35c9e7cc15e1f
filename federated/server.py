"""The server flow shared by every entry point (Simulation Engine, ``flwr run``, Deployment Engine).

:func:`run_federated` takes a Flower :class:`Grid` and an :class:`FLConfig`,
holds out the test split of ``cfg.data`` for server-side evaluation after
every round, runs the chosen strategy with Flower's ``Strategy.start`` and
returns an :class:`FLReport` with accuracy and cumulative bytes per round.
"""

from __future__ import annotations

import json
import os
import time
from logging import INFO
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from condense.data import load_dataset
from condense.normalization import Normalization
from condense.federated.accounting import CountingGrid
from condense.federated.config import FLConfig
from condense.federated.local_training import build_global_model
from condense.federated.report import FLReport, RoundRecord
from condense.federated.server_training import held_out_accuracy
from condense.federated.strategies import CheckedFedAvg, Hybrid, MultiRound, OneShot, SetCollector, wait_for_nodes
from condense.federated.validation import PayloadLimits


def run_federated(grid: Grid, cfg: FLConfig) -> FLReport:
    """Run ``cfg.strategy`` over the nodes of ``grid`` and report accuracy and bytes per round."""
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    _, test = load_dataset(cfg.data, root=cfg.root)
    if cfg.normalization is None:
        # The server's own statistics (of its held-out split, no labels used):
        # every client's set is re-normalized with them, clients train with them.
        cfg.normalization = Normalization.from_data(test.x).to_meta()
    norm = Normalization(tuple(cfg.normalization["mean"]), tuple(cfg.normalization["std"]))
    shape, k = tuple(test.image_shape), test.num_classes
    x_test, y_test = norm.apply(test.x), test.y

    def build():
        torch.manual_seed(cfg.seed)
        return build_global_model(cfg.model, cfg.global_model_kwargs(), shape, k)

    report = FLReport(cfg.strategy, config=json.loads(cfg.to_json()))
    counting = CountingGrid(grid)
    wait_for_nodes(counting, cfg.num_clients, cfg.min_clients, cfg.timeout)
    eval_model = build()

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        eval_model.load_state_dict(arrays.to_torch_state_dict())
        acc = held_out_accuracy(eval_model, x_test, y_test, cfg.device)
        report.history.append(RoundRecord(server_round, acc, counting.bytes_up, counting.bytes_down, time.perf_counter() - start))
        log(INFO, "round %d: held-out accuracy %.4f, bytes up %d down %d", server_round, acc, counting.bytes_up, counting.bytes_down)
        if cfg.report_path:
            report.wall_seconds = time.perf_counter() - start
            write_report(report, cfg.report_path)
        return MetricRecord({"accuracy": acc})

    def client_config(server_round: int = 1) -> ConfigRecord:
        """Only what a round needs (never the run's data paths, timeouts or report files)."""
        return cfg.round_config(server_round, k).to_record()

    limit = cfg.max_payload_bytes or PayloadLimits.for_run(shape, k, cfg.ipc).max_bytes
    limits = PayloadLimits(shape, k, cfg.ipc, int(limit))
    collector = SetCollector(limits, norm, report)
    rounds = cfg.rounds
    if cfg.strategy == "oneshot":
        strategy, rounds = OneShot(cfg, build, collector, client_config), 1
    elif cfg.strategy == "multiround":
        strategy = MultiRound(cfg, build, collector, client_config)
    else:
        fedavg_kwargs = dict(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=cfg.min_clients, min_available_nodes=cfg.min_clients)
        strategy = (Hybrid if cfg.strategy == "hybrid" else CheckedFedAvg)(cfg, build, collector, **fedavg_kwargs)
    strategy.start(
        grid=counting,
        initial_arrays=ArrayRecord(build().state_dict()),
        num_rounds=rounds,
        timeout=cfg.timeout,
        train_config=client_config(),
        evaluate_fn=evaluate_fn,
    )
    report.synthetic_images = sum(len(s) for s in getattr(strategy, "sets", []))
    report.wall_seconds = time.perf_counter() - start
    if cfg.report_path:
        write_report(report, cfg.report_path)
    log(INFO, "%s", report.summary())
    return report


def write_report(report: FLReport, path: str | os.PathLike) -> None:
    """The report as JSON, written atomically (a crash leaves the previous file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=1))
    os.replace(tmp, path)


def build_server_app(cfg: FLConfig | list[FLConfig] | None = None, sink: list[FLReport] | None = None) -> ServerApp:
    """A ServerApp running :func:`run_federated`.

    With ``cfg`` it runs that configuration, or each of a list in turn over
    the same nodes (Python use, ``run_simulation``);
    without, it reads the run config (``flwr run``: ``[tool.flwr.app.config]``
    and ``--run-config``; ``report-path`` names the JSON report file). Each
    report is also appended to ``sink``.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        configs = cfg if isinstance(cfg, list) else [cfg or FLConfig.from_run_config(dict(context.run_config))]
        for run_cfg in configs:
            report = run_federated(grid, run_cfg)
            if sink is not None:
                sink.append(report)

    return app


app = build_server_app()
