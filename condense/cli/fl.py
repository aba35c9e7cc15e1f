"""``condense fl``: a federated run on Flower's Simulation Engine (clients share synthetic sets)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from condense.cli.common import add_command, check_device, emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "fl", "federated learning with Flower: fedavg, oneshot, multiround or hybrid")
    p.add_argument("--data", required=True, help="digits, mnist, cifar10, ... or a path (partitioned over the clients)")
    p.add_argument("--root", default=None, help="folder holding a named dataset's files (or set $CONDENSE_DATA)")
    p.add_argument("--clients", type=int, default=10, help="Flower clients (SuperNodes of the simulation)")
    p.add_argument("--partitioner", default="dirichlet", choices=["dirichlet", "iid"], help="how the data is split over the clients")
    p.add_argument("--alpha", type=float, default=0.1, help="Dirichlet concentration over labels")
    p.add_argument("--strategy", default="oneshot", choices=["fedavg", "oneshot", "multiround", "hybrid"],
                   help="fedavg: Flower's FedAvg; oneshot: one round of synthetic sets; multiround / hybrid: see the Flower guide")
    p.add_argument("--rounds", type=int, default=None, help="rounds (None: 1 for oneshot, 3 for multiround, 10 otherwise)")
    p.add_argument("--ipc", type=int, default=10, help="synthetic images per class and client")
    p.add_argument("--method", default="dm", help="condensation method of the clients (see `condense methods`)")
    p.add_argument("--steps", type=int, default=200,
                   help="distillation steps per client (a method hyperparameter: ignored by methods without steps)")
    p.add_argument("--method-args", default="{}",
                   help='JSON hyperparameters of the method, e.g. \'{"batch_real": 64, "model_kwargs": {"width": 32}}\'')
    p.add_argument("--feddm-radius", type=float, default=0.01, help="multiround: noise around the global weights (x each tensor's RMS)")
    p.add_argument("--encoding", default="float16", choices=["float32", "float16", "uint8"], help="how synthetic images travel")
    p.add_argument("--width", type=int, default=32, help="ConvNet width: the global model's, and the clients' method network's unless --method-args sets model_kwargs")
    p.add_argument("--local-epochs", type=int, default=1, help="FedAvg / hybrid: local epochs per round")
    p.add_argument("--server-epochs", type=int, default=300, help="server training on synthetic sets (oneshot, multiround)")
    p.add_argument("--server-batch", type=int, default=64, help="server minibatch on synthetic sets")
    p.add_argument("--min-clients", type=int, default=1, help="replies a round needs to go on")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for replies per round")
    p.add_argument("--report", default=None, help="also write the full report (per-round history, incidents) to this JSON file")
    p.add_argument("--json", action="store_true", help="end with one JSON line: accuracy, bytes_up, bytes_down, rounds, wall_seconds")
    p.add_argument("--seed", type=int, default=0, help="random seed (partition, models, condensation)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=1, help="torch threads per client and for the server")
    p.add_argument("--parallel", type=int, default=1, help="ClientApps run at once (Ray CPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from condense.cli.extras import require_extra

    require_extra("flower", "flwr", "condense fl")
    from condense.errors import CondenseError
    from condense.federated import FLConfig, simulate
    from condense.registry import get_method

    # Checked here, before Ray starts: otherwise every client fails and the run "succeeds" at chance level.
    if args.strategy != "fedavg":
        get_method(args.method)
    check_device(args.device)
    if args.threads < 1 or args.parallel < 1:
        raise CondenseError(f"--threads and --parallel must be at least 1, got {args.threads} and {args.parallel}")
    torch.set_num_threads(args.threads)
    if args.quiet:
        os.environ["CONDENSE_QUIET"] = "1"
    rounds = args.rounds or {"oneshot": 1, "multiround": 3}.get(args.strategy, 10)
    try:
        extra = json.loads(args.method_args)
    except json.JSONDecodeError as exc:
        raise CondenseError(f"--method-args is not valid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise CondenseError("--method-args must be a JSON object")
    # The CLI's own defaults for a client's method (each only where the method takes it):
    # --steps, 64 real images per class, and the --width ConvNet; --method-args overrides them.
    taken = set(get_method(args.method).cls._param_names()) if args.strategy != "fedavg" else set()
    defaults = {"steps": args.steps, "batch_real": 64, "model_kwargs": {"width": args.width}}
    method_kwargs = {k: v for k, v in defaults.items() if k in taken}
    method_kwargs.update(extra)
    cfg = FLConfig(
        data=args.data, root=args.root, num_clients=args.clients, partitioner=args.partitioner, alpha=args.alpha,
        strategy=args.strategy, rounds=rounds, ipc=args.ipc, method=args.method, method_kwargs=method_kwargs,
        encoding=args.encoding, feddm_radius=args.feddm_radius,
        width=args.width, local_epochs=args.local_epochs, server_epochs=args.server_epochs, server_batch=args.server_batch, min_clients=args.min_clients,
        timeout=args.timeout, seed=args.seed, device=args.device, threads=args.threads,
    ).validate()
    report = simulate(cfg, max_parallel=args.parallel)
    print(report.summary())
    for rec in report.history:
        print(f"  round {rec.round:>3}: accuracy {100 * rec.accuracy:6.2f}%  bytes up {rec.bytes_up:>12,}  down {rec.bytes_down:>12,}")
    for inc in report.incidents:
        print(f"  round {inc.round}: node {inc.node_id} {inc.kind}: {inc.reason}")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report.to_json(), indent=1))
    if args.json:
        emit_json({"accuracy": report.accuracy, "bytes_up": report.bytes_up, "bytes_down": report.bytes_down,
                   "rounds": report.rounds, "wall_seconds": round(report.wall_seconds, 2), "strategy": report.strategy,
                   "incidents": len(report.incidents), "synthetic_images": report.synthetic_images})
    return 0
