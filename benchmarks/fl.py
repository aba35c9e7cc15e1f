"""Federated benchmark: Flower FedAvg vs one-shot / multi-round / hybrid synthetic-set strategies.

Every run goes through Flower's Simulation Engine (Ray, one ClientApp at a
time, 1 torch thread) with the same ConvNet for every strategy; ``--jobs 2``
runs two of them side by side, one per core. Each finished
run is saved at once as JSON under ``benchmarks/results/fl_runs/``, so a
partial benchmark keeps what it measured; the Markdown table and the plot of
accuracy against cumulative bytes are rebuilt from all saved runs of the
dataset and alpha.

    python benchmarks/fl.py --dataset mnist --alpha 0.1 --strategies oneshot,fedavg --seeds 0
    python benchmarks/fl.py --dataset mnist --alpha 0.1,0.5 --seeds 0,1,2 --jobs 2 --skip-done   # the whole grid
    python benchmarks/fl.py --dataset mnist --alpha 0.1 --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "fl_runs"
DEFAULT_IPC = 10
# knobs of the grid that, away from these defaults, make a setting of their own (its own table, plot and run files)
GRID_DEFAULTS = {"local_batch": 32, "local_epochs": 1, "steps": 200}
GRID_TAGS = {"local_batch": "lb", "local_epochs": "le", "steps": "st"}
DATA = {"mnist": "/work/shared/data/mnist.npz", "cifar10": "cifar10", "digits": "digits"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATA))
    p.add_argument("--root", default=os.environ.get("CONDENSE_DATA", "/work/shared/data"))
    p.add_argument("--strategies", default="fedavg,oneshot,hybrid,multiround")
    p.add_argument("--alpha", default="0.1", help="comma-separated Dirichlet alphas")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20, help="rounds of fedavg and hybrid")
    p.add_argument("--multiround-rounds", type=int, default=3)
    p.add_argument("--ipc", type=int, default=DEFAULT_IPC)
    p.add_argument("--method", default="dm", help="client condensation method (a run of another method than dm is named after it)")
    p.add_argument("--method-args", default="{}", help="JSON: further method hyperparameters (over --steps/--batch-real/--width/--depth)")
    p.add_argument("--steps", type=int, default=GRID_DEFAULTS["steps"], help="distillation steps per client")
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--encoding", default="float16")
    # Width 16, 1 local epoch: the MNIST grid (2 alphas x 3 seeds x 4 strategies) took 15,300 s of run time
    # at 1 thread each, about 2.1 h of 2 cores with --jobs 2; width 32 costs ~2.7x per FedAvg round.
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--local-epochs", type=int, default=GRID_DEFAULTS["local_epochs"])
    p.add_argument("--local-batch", type=int, default=GRID_DEFAULTS["local_batch"], help="batch size of local training")
    p.add_argument("--server-epochs", type=int, default=300)
    p.add_argument("--server-batch", type=int, default=64)
    p.add_argument("--hybrid-epochs", type=int, default=2)
    p.add_argument("--feddm-radius", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1,
                   help="runs side by side, each in its own process with --threads torch threads (2 on 2 cores)")
    p.add_argument("--skip-done", action="store_true", help="skip runs whose finished result is already saved")
    p.add_argument("--no-report", action="store_true", help="save the runs only (the --jobs children: the parent writes the report)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table and plot from saved runs")
    p.add_argument("--in-process", action="store_true",
                   help="one-shot without Flower's transport: condense every client in this process (the ClientApp's "
                        "condense_local), encode, validate and train exactly as the server does; rows go to "
                        "results/fl_oneshot_inprocess.jsonl and its table (for a shared machine where Ray's niced "
                        "ClientApps starve)")
    p.add_argument("--inprocess-jsonl", default=None, help="rows of --in-process (default: results/fl_oneshot_inprocess.jsonl)")
    p.add_argument("--encoding-ablation", action="store_true",
                   help="instead: condense every client once (in-process, no Flower), then train the server model on the "
                        "sets sent as float32 / float16 / uint8, and report accuracy and bytes of each")
    return p.parse_args(argv)


def run_one(args: argparse.Namespace, strategy: str, alpha: float, seed: int, command: str = "") -> dict:
    from condense.federated import FLConfig, simulate

    data = DATA[args.dataset]
    cfg = FLConfig(
        data=data if data.startswith("/") or args.dataset == "digits" else args.dataset,
        root=None if data.startswith("/") or args.dataset == "digits" else args.root,
        num_clients=args.clients,
        partitioner="dirichlet",
        alpha=alpha,
        strategy=strategy,
        rounds={"fedavg": args.rounds, "hybrid": args.rounds, "multiround": args.multiround_rounds}.get(strategy, 1),
        ipc=args.ipc,
        method=args.method,
        method_kwargs=method_kwargs(args),
        encoding=args.encoding,
        feddm_radius=args.feddm_radius,
        width=args.width,
        depth=args.depth,
        local_epochs=args.local_epochs,
        local_batch=args.local_batch,
        server_epochs=args.server_epochs if strategy == "oneshot" else max(1, args.server_epochs // 3),
        hybrid_epochs=args.hybrid_epochs,
        min_clients=1,
        seed=seed,
        threads=args.threads,
        server_batch=args.server_batch,
        # the server rewrites this file after every round: a run stopped early keeps its history
        report_path=str(run_path(args, strategy, alpha, seed)),
    )
    from condense.reporting import peak_rss_mib

    start = time.perf_counter()
    report = simulate(cfg)
    out = report.to_json()
    out.update(command=command, dataset=args.dataset, alpha=alpha, seed=seed, peak_rss_mib=peak_rss_mib())
    RUNS.mkdir(parents=True, exist_ok=True)
    path = run_path(args, strategy, alpha, seed)
    if report.incidents:
        # every client here is healthy: a dropped reply is a fault of the set-up, and the run's
        # numbers would not measure the strategy, so it is kept for reading but not counted as done
        path.write_text(json.dumps(out, indent=1))
        first = report.incidents[0]
        raise SystemExit(
            f"{path.name}: {len(report.incidents)} client repl(ies) not used (first: round {first.round}, "
            f"node {first.node_id}, {first.kind}: {first.reason}); saved without total_seconds, not counted as finished"
        )
    out["total_seconds"] = time.perf_counter() - start
    path.write_text(json.dumps(out, indent=1))
    print(f"{report.summary()}  -> {path}", flush=True)
    return out


def method_kwargs(args: argparse.Namespace) -> dict:
    """The clients' method hyperparameters: steps, real batch and the grid's ConvNet
    (width/depth, as the global model) where the method takes them, then ``--method-args``."""
    from condense.registry import get_method

    taken = set(get_method(args.method).cls._param_names())
    out = {"steps": args.steps, "batch_real": args.batch_real, "model": "convnet",
           "model_kwargs": {"width": args.width, "depth": args.depth}}
    out = {k: v for k, v in out.items() if k in taken}
    out.update(json.loads(args.method_args))
    return out


def run_knob(config: dict, name: str) -> int:
    """A grid knob of a saved run: a config field, or (steps) a method hyperparameter."""
    if name in config:
        return config[name]
    return config.get("method_kwargs", {}).get(name, GRID_DEFAULTS[name])


def grid_knobs(args: argparse.Namespace) -> dict[str, int]:
    """This invocation's values of the knobs in ``GRID_DEFAULTS``."""
    return {name: getattr(args, name) for name in GRID_DEFAULTS}


def setting(dataset: str, alpha: float, width: int, knobs: dict[str, int] | None = None) -> str:
    """What one table compares: runs of one dataset, alpha, model width and grid knobs
    (a knob at its default adds nothing, so the names of runs made before it existed still hold)."""
    tag = "".join(f"_{GRID_TAGS[k]}{v}" for k, v in (knobs or {}).items() if v != GRID_DEFAULTS[k])
    return f"{dataset}_a{alpha}_w{width}{tag}"


def run_name(setting_name: str, strategy: str, encoding: str, ipc: int, seed: int, method: str = "dm") -> str:
    """File stem of one run; synthetic-set runs in a non-default method, encoding or IPC are told apart by it."""
    tag = ""
    if strategy != "fedavg":
        tag += f"-{method}" if method != "dm" else ""
        tag += f"-{encoding}" if encoding != "float16" else ""
        tag += f"-ipc{ipc}" if ipc != DEFAULT_IPC else ""
    return f"{setting_name}_{strategy}{tag}_s{seed}"


def run_path(args: argparse.Namespace, strategy: str, alpha: float, seed: int, suffix: str = ".json") -> Path:
    """Where one run of this invocation's setting saves its result (or, with ``suffix=".log"``, its output)."""
    name = setting(args.dataset, alpha, args.width, grid_knobs(args))
    return RUNS / f"{run_name(name, strategy, args.encoding, args.ipc, seed, args.method)}{suffix}"


def label(run: dict) -> str:
    """Row label: the strategy, and the payload encoding and IPC where a synthetic set travels."""
    if run["strategy"] == "fedavg":
        return "fedavg"
    method = run["config"].get("method", "dm")
    what = f"{method}, " if method != "dm" else ""
    return f"{run['strategy']} ({what}{run['config']['encoding']}, IPC {run['config']['ipc']})"


def load_runs(dataset: str, alpha: float, width: int, knobs: dict[str, int] | None = None) -> list[dict]:
    """Saved runs of one setting. The file pattern of a default setting also matches the files of
    the settings that extend its name, so each run's own config decides."""
    knobs = {**GRID_DEFAULTS, **(knobs or {})}
    runs = []
    for path in sorted(RUNS.glob(f"{setting(dataset, alpha, width, knobs)}_*_s*.json")):
        run = json.loads(path.read_text())
        if any(run_knob(run["config"], k) != v for k, v in knobs.items()):
            continue
        run.setdefault("seed", run["config"]["seed"])
        run["planned_rounds"] = run["config"]["rounds"] if run["strategy"] != "oneshot" else 1
        runs.append(run)
    return runs


def accuracy_at_bytes(history: list[dict], budget: float) -> float:
    """Accuracy of the last model the run had when it had sent at most ``budget`` bytes in total."""
    acc = history[0]["accuracy"]
    for rec in history:
        if rec["bytes_up"] + rec["bytes_down"] <= budget:
            acc = rec["accuracy"]
    return acc


def write_report(args: argparse.Namespace, alpha: float, command: str) -> Path | None:
    from condense.reporting import machine_description, markdown_table, mean_std

    saved = load_runs(args.dataset, alpha, args.width, grid_knobs(args))
    # a run without total_seconds is still running (or was stopped): its partial history would skew the means
    runs = [r for r in saved if "total_seconds" in r]
    unfinished = [r for r in saved if "total_seconds" not in r]
    if not runs:
        return None
    by_strategy: dict[str, list[dict]] = {}
    for run in runs:
        by_strategy.setdefault(label(run), []).append(run)
    rank = {"fedavg": 0, "oneshot": 1, "multiround": 2, "hybrid": 3}
    order = sorted(by_strategy, key=lambda name: (rank.get(name.split(" ")[0], 9), name))
    rows = []
    fedavg = by_strategy.get("fedavg", [])
    fedavg_full = [h for f in fedavg for h in f["history"] if h["round"] == f["planned_rounds"]]
    for name in order:
        group = by_strategy[name]
        total = [r["bytes_up"] + r["bytes_down"] for r in group]
        mean_total = sum(total) / len(total)
        fedavg_equal = (
            mean_std([accuracy_at_bytes(f["history"], mean_total) for f in fedavg]) if fedavg and name != "fedavg" else ""
        )
        fedavg_rounds = ""
        if fedavg and name != "fedavg":
            r = group[0]["rounds"]
            # only FedAvg runs that got that far (one still running or stopped early may not have)
            reached = [h["accuracy"] for f in fedavg for h in f["history"] if h["round"] == r]
            fedavg_rounds = mean_std(reached) if reached else "not reached"
        done = group[0]["rounds"]
        planned = group[0]["planned_rounds"]
        rows.append([
            name,
            f"{done}" if done == planned else f"{done} of {planned} (stopped)",
            mean_std([r["accuracy"] for r in group]),
            f"{mean_total / 1e6:.3f}",
            f"{sum(r['bytes_up'] for r in group) / len(group) / 1e6:.3f}",
            f"{sum(r['history'][-1]['seconds'] for r in group) / len(group):.0f}",
            f"{max(r.get('peak_rss_mib', 0) for r in group):.0f}",
            f"{mean_total / (sum(h['bytes_up'] + h['bytes_down'] for h in fedavg_full) / len(fedavg_full)):.4f}"
            if fedavg_full and name != "fedavg" else "",
            len(group),
            fedavg_rounds,
            fedavg_equal,
        ])
    headers = ["strategy", "rounds", "accuracy % (mean ± std)", "total MB", "up MB", "wall s", "peak RSS MiB (driver)",
               "bytes / FedAvg's (all rounds)",
               "seeds", "FedAvg % at same rounds", "FedAvg % at same bytes"]
    table = markdown_table(headers, rows)
    cfg = runs[0]["config"]
    lines = [
        f"# Federated benchmark: {args.dataset}, Dirichlet alpha = {alpha}",
        "",
        "Commands that produced the runs:",
        "",
        *sorted({f"    {r['command']}" for r in runs if r.get("command")}),
        "",
        f"Machine: {machine_description()} (each run: one process, one ClientApp at a time, 1 torch thread; runs of `--jobs 2` and other "
        "benchmarks shared the 2 cores, so wall times are upper bounds).",
        "",
        f"Protocol: Flower Simulation Engine (`run_simulation`, Ray), {cfg['num_clients']} clients, flwr-datasets DirichletPartitioner "
        f"(alpha {alpha}, min partition size {cfg['min_partition_size']}), seeds {sorted({r['seed'] for r in runs})}. "
        f"Model for every strategy: ConvNet depth {cfg['depth']} width {cfg['width']} (instance norm). "
        f"FedAvg / hybrid: Flower `FedAvg`, {cfg['local_epochs']} local epoch(s), SGD lr {cfg['local_lr']} momentum 0.9 batch {cfg['local_batch']}. "
        f"Synthetic sets: {cfg['method']}, {run_knob(cfg, 'steps')} steps, "
        f"{cfg.get('batch_real', cfg.get('method_kwargs', {}).get('batch_real', '?'))} real images per class per step "
        "(runs of another method: its name in the row, hyperparameters in its run file), "
        f"IPC and payload encoding as in each row; one-shot server training {runs[0]['config']['server_epochs'] if runs[0]['strategy'] == 'oneshot' else args.server_epochs} epochs, "
        f"batch {cfg.get('server_batch', 64)}, with DSA; "
        f"hybrid fine-tunes {cfg['hybrid_epochs']} epoch(s) on the sets after every FedAvg round. "
        "Accuracy: the server's model on the held-out test split. Bytes: `count_bytes()` of every record sent and received (each broadcast counted per node).",
        "",
        table,
        "",
        "\"FedAvg % at same bytes\": FedAvg's accuracy when it had sent as many bytes in total as this strategy (read off the curve; "
        "before FedAvg's first round completes that is its initial model).",
        "",
    ]
    for run in runs:
        inc = run.get("incidents", [])
        if inc:
            kinds: dict[str, int] = {}
            for i in inc:
                kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
            lines.append(f"- {run['strategy']} seed {run['seed']}: replies not used: {kinds}")
    for run in unfinished:
        lines.append(f"- not in the table (running or stopped): {label(run)} seed {run['seed']}, "
                     f"round {run['history'][-1]['round']} of {run['planned_rounds']}")
    png = RESULTS / f"fl_{setting(args.dataset, alpha, args.width, grid_knobs(args))}.png"
    plot(runs, png, f"{args.dataset}, Dirichlet alpha={alpha}")
    lines.append(f"\nPlot: `{png.relative_to(RESULTS.parent.parent)}` (held-out accuracy vs cumulative bytes, log x; a step curve: "
                 "the server holds each model until the next round completes; the leftmost point is the initial model).")
    path = RESULTS / f"fl_{setting(args.dataset, alpha, args.width, grid_knobs(args))}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fedavg": "tab:blue", "oneshot": "tab:red", "multiround": "tab:green", "hybrid": "tab:purple"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sent = [h["bytes_up"] + h["bytes_down"] for run in runs for h in run["history"] if h["bytes_up"] + h["bytes_down"] > 0]
    left = min(sent) / 10 if sent else 1.0  # where "nothing sent yet" (the initial model) is drawn on a log axis
    seen = set()
    for run in runs:
        hist = run["history"]
        xs = [max(left, h["bytes_up"] + h["bytes_down"]) for h in hist]
        ys = [100 * h["accuracy"] for h in hist]
        # accuracy is what the server holds until the next round completes: a step curve
        xs.append(max(sent) * 1.5 if sent else xs[-1])
        ys.append(ys[-1])
        name = label(run)
        ax.plot(xs, ys, drawstyle="steps-post", marker="o", ms=3, markevery=list(range(len(hist))),
                color=colors.get(run["strategy"]), label=None if name in seen else name, alpha=0.85,
                linestyle="--" if run["config"]["encoding"] == "uint8" and run["strategy"] != "fedavg" else "-")
        seen.add(name)
    ax.set_xscale("log")
    ax.set_xlabel("cumulative bytes sent (up + down)")
    ax.set_ylabel("held-out accuracy %")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def encoding_ablation(args: argparse.Namespace, alpha: float, seed: int, command: str) -> Path:
    """Accuracy cost of each payload encoding on the same client sets (the only difference is the wire format)."""
    import torch
    from flwr.app import RecordDict

    from condense.data import load_dataset
    from condense.federated.client import condense_local
    from condense.federated.config import FLConfig
    from condense.federated.local_training import build_global_model
    from condense.federated.partition import client_partition
    from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY, encode_synthetic_set
    from condense.federated.server_training import held_out_accuracy, train_on_sets
    from condense.federated.validation import PayloadLimits, validate_reply
    from condense.normalization import Normalization
    from condense.reporting import machine_description, markdown_table

    data = DATA[args.dataset]
    root = None if data.startswith("/") or args.dataset == "digits" else args.root
    cfg = FLConfig(data=data, root=root, num_clients=args.clients, alpha=alpha, ipc=args.ipc, method=args.method,
                   method_kwargs=method_kwargs(args), width=args.width, depth=args.depth, encoding="float32", seed=seed)
    _, test = load_dataset(data, root=root)
    norm = Normalization.from_data(test.x)
    shape, k = tuple(test.image_shape), test.num_classes
    limits = PayloadLimits.for_run(shape, k, args.ipc)
    client_sets = []
    start = time.perf_counter()
    for pid in range(args.clients):
        part = client_partition(data, root, pid, args.clients, "dirichlet", alpha, seed, cfg.min_partition_size)
        content, _ = condense_local(part, cfg.round_config(1, k), seed=seed * 100_003 + 1_000 * pid + 1)
        if ARRAYS_KEY in content.array_records:
            client_sets.append(validate_reply(content, limits).to_synthetic_set(norm))
    condense_s = time.perf_counter() - start
    rows = []
    for encoding in ("float32", "float16", "uint8"):
        sets, total = [], 0
        for syn in client_sets:
            syn_px = syn.subset(list(range(len(syn))))
            arrays, config = encode_synthetic_set(syn_px, encoding)
            total += arrays.count_bytes() + config.count_bytes()
            sets.append(validate_reply(RecordDict({ARRAYS_KEY: arrays, CONFIG_KEY: config}), limits).to_synthetic_set(norm))
        torch.manual_seed(seed)
        model = build_global_model(cfg.model, cfg.global_model_kwargs(), shape, k)
        t = time.perf_counter()
        train_on_sets(model, sets, args.server_epochs, 0.01, seed, batch_size=args.server_batch)
        acc = held_out_accuracy(model, norm.apply(test.x), test.y)
        rows.append([encoding, f"{100 * acc:.2f}", f"{total:,}", f"{time.perf_counter() - t:.0f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["encoding", "one-shot accuracy %", "bytes up (all clients)", "server training s"], rows)
    text = (
        f"# Payload encodings: {args.dataset}, Dirichlet alpha {alpha}, seed {seed}\n\nCommand: `{command}`\n\n"
        f"Machine: {machine_description()} (shared, 1 thread).\n\n"
        f"{args.clients} clients condense once ({args.method} IPC {args.ipc}, {args.steps} steps, {condense_s:.0f} s in all); the same "
        f"{sum(len(s) for s in client_sets)} images are then encoded each way, decoded and validated as the server does, and a "
        f"ConvNet (width {args.width}) is trained on their union for {args.server_epochs} epochs (batch {args.server_batch}, DSA).\n\n{table}\n"
    )
    path = RESULTS / f"fl_encodings_{args.dataset}_a{alpha}.md"
    path.write_text(text)
    print(text)
    return path


INPROCESS = RESULTS / "fl_oneshot_inprocess.jsonl"


def oneshot_in_process(args: argparse.Namespace, alpha: float, seed: int, command: str) -> dict:
    """One-shot FL with the run's own pieces, minus the transport: each client's ``condense_local``
    (its partition, its seed ``seed * 100003 + 1000 * pid + 1``), the payload in ``args.encoding``,
    the server's ``validate_reply`` and normalization, and ``train_on_sets`` as ``OneShot`` calls it."""
    import torch
    from flwr.app import RecordDict

    from condense.data import load_dataset
    from condense.federated.client import condense_local
    from condense.federated.config import FLConfig
    from condense.federated.local_training import build_global_model
    from condense.federated.partition import client_partition
    from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY
    from condense.federated.server_training import held_out_accuracy, train_on_sets
    from condense.federated.validation import PayloadLimits, validate_reply
    from condense.normalization import Normalization
    from condense.reporting import peak_rss_mib

    data = DATA[args.dataset]
    root = None if data.startswith("/") or args.dataset == "digits" else args.root
    cfg = FLConfig(data=data, root=root, num_clients=args.clients, alpha=alpha, ipc=args.ipc, method=args.method,
                   method_kwargs=method_kwargs(args), width=args.width, depth=args.depth, encoding=args.encoding,
                   server_epochs=args.server_epochs, server_batch=args.server_batch, seed=seed).validate()
    _, test = load_dataset(data, root=root)
    cfg.normalization = Normalization.from_data(test.x).to_meta()  # as run_federated: the server's held-out split
    norm = Normalization(tuple(cfg.normalization["mean"]), tuple(cfg.normalization["std"]))
    shape, k = tuple(test.image_shape), test.num_classes
    limits = PayloadLimits.for_run(shape, k, args.ipc)
    sets, up, skipped, empty = [], 0, 0, 0
    start = time.perf_counter()
    for pid in range(args.clients):
        part = client_partition(data, root, pid, args.clients, cfg.partitioner, alpha, seed, cfg.min_partition_size)
        content, metrics = condense_local(part, cfg.round_config(1, k), seed=seed * 100_003 + 1_000 * pid + 1)
        skipped += int(metrics["classes-skipped"])
        if ARRAYS_KEY not in content.array_records:
            empty += 1
            continue
        up += content.array_records[ARRAYS_KEY].count_bytes() + content.config_records[CONFIG_KEY].count_bytes()
        reply = RecordDict({ARRAYS_KEY: content.array_records[ARRAYS_KEY], CONFIG_KEY: content.config_records[CONFIG_KEY]})
        sets.append(validate_reply(reply, limits).to_synthetic_set(norm))
    condense_s = time.perf_counter() - start
    torch.manual_seed(seed)
    model = build_global_model(cfg.model, cfg.global_model_kwargs(), shape, k)
    t = time.perf_counter()
    train_on_sets(model, sets, cfg.server_epochs, cfg.server_lr, cfg.seed + 1, "cpu", batch_size=cfg.server_batch)
    acc = held_out_accuracy(model, norm.apply(test.x), test.y)
    row = {"dataset": args.dataset, "alpha": alpha, "seed": seed, "method": args.method, "method_kwargs": cfg.method_kwargs,
           "ipc": args.ipc, "encoding": args.encoding, "clients": args.clients, "accuracy": acc, "bytes_up": up,
           "stored_images": sum(len(s) for s in sets), "training_images": sum(len(s.training_tensors()[0]) for s in sets),
           "classes_skipped": skipped, "empty_clients": empty, "condense_seconds": round(condense_s, 1),
           "train_seconds": round(time.perf_counter() - t, 1), "server_epochs": cfg.server_epochs,
           "width": args.width, "peak_rss_mib": round(peak_rss_mib()), "command": command}
    with INPROCESS.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(row, flush=True)
    return row


def inprocess_table() -> Path:
    """The in-process one-shot rows as a Markdown table (mean ± std over seeds per method and setting)."""
    import statistics

    from condense.reporting import machine_description, markdown_table

    rows = [json.loads(line) for line in INPROCESS.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["dataset"], r["alpha"], r["method"], r["ipc"], r["encoding"], json.dumps(r["method_kwargs"], sort_keys=True))
        groups.setdefault(key, []).append(r)
    table = []
    for (dataset, alpha, method, ipc, encoding, kwargs), rs in sorted(groups.items()):
        accs = [100 * r["accuracy"] for r in rs]
        std = statistics.pstdev(accs) if len(accs) > 1 else 0.0
        table.append([method, dataset, alpha, ipc, encoding, ",".join(str(r["seed"]) for r in rs),
                      f"{statistics.fmean(accs):.2f} ± {std:.2f}", f"{statistics.fmean(r['bytes_up'] for r in rs):,.0f}",
                      f"{statistics.fmean(r['stored_images'] for r in rs):.0f}", f"{statistics.fmean(r['training_images'] for r in rs):.0f}",
                      f"{statistics.fmean(r['classes_skipped'] for r in rs):.1f}",
                      f"{statistics.fmean(r['condense_seconds'] for r in rs):.0f}", f"{statistics.fmean(r['train_seconds'] for r in rs):.0f}",
                      kwargs])
    text = (
        "# One-shot FL, in process (no transport): methods at equal bytes\n\n"
        f"Machine: {machine_description()}, shared with other jobs (load average 10-16 on 2 cores: times are upper bounds).\n\n"
        "Each row: every client condenses its Dirichlet partition with the ClientApp's own `condense_local` (client seed "
        "`seed*100003 + 1000*pid + 1`, as in a Flower run), the payload is encoded, checked by the server's "
        "`validate_reply` and re-normalized with the server's statistics, and `train_on_sets` trains the ConvNet as "
        "`OneShot` does (server epochs, batch 64, lr 0.01, DSA). Only Flower's transport is left out (the Simulation Engine's "
        "ClientApps run at nice 15+ and starved on this shared machine). Bytes up = the clients' ArrayRecord + ConfigRecord. "
        "Stored images = what is sent (one image of the input's size each); training images = after the server expands "
        "multi-formation images (IDM: 4 tiles per stored image). Classes skipped = client classes with fewer samples than "
        "the method needs (DM: ipc; IDM with factor 2: 4 x ipc).\n\n"
        "Commands:\n\n" + "\n".join(sorted({f"    {r['command']}" for r in rows})) + "\n\n"
        + markdown_table(["method", "data", "alpha", "IPC", "encoding", "seeds", "accuracy %", "bytes up", "stored images",
                          "training images", "classes skipped", "condense s", "server train s", "method_kwargs"], table)
        + "\n"
    )
    path = RESULTS / "fl_oneshot_inprocess.md"
    path.write_text(text)
    return path


def is_done(args: argparse.Namespace, strategy: str, alpha: float, seed: int) -> bool:
    """Whether this run finished earlier (``total_seconds`` is written only when a run ends)."""
    try:
        return "total_seconds" in json.loads(run_path(args, strategy, alpha, seed).read_text())
    except (OSError, ValueError):
        return False


def run_side_by_side(args: argparse.Namespace, tasks: list[tuple[float, int, str]], argv: list[str], command: str) -> int:
    """Run each (alpha, seed, strategy) in its own process, ``args.jobs`` at a time.

    Every child is this script with the same flags narrowed to one run, so it
    saves its run JSON exactly as a sequential run would; this process alone
    rewrites the report after each one. A failed child is reported and the
    others go on. With ``--skip-done`` a run finished meanwhile (by another
    process) is not started again.
    """
    import subprocess

    with_value, switches = {"--alpha", "--seeds", "--strategies", "--jobs"}, {"--no-report", "--skip-done"}

    def narrowed(alpha: float, seed: int, strategy: str) -> list[str]:
        keep, skip_value = [], False
        for token in argv:
            name = token.split("=", 1)[0]
            if skip_value or name in switches:
                skip_value = False
                continue
            if name in with_value:
                skip_value = "=" not in token  # "--alpha 0.1" drops the next token too, "--alpha=0.1" does not
                continue
            keep.append(token)
        return [sys.executable, __file__, *keep, "--alpha", str(alpha), "--seeds", str(seed), "--strategies", strategy,
                "--jobs", "1", "--no-report"]

    pending, running, failed = list(tasks), [], []
    while pending or running:
        while pending and len(running) < args.jobs:
            alpha, seed, strategy = pending.pop(0)
            if args.skip_done and is_done(args, strategy, alpha, seed):
                print(f"skip {strategy} alpha={alpha} seed={seed}: done", flush=True)
                continue
            log = run_path(args, strategy, alpha, seed, ".log")
            RUNS.mkdir(parents=True, exist_ok=True)
            handle = log.open("w")
            proc = subprocess.Popen(narrowed(alpha, seed, strategy), stdout=handle, stderr=subprocess.STDOUT)
            running.append((proc, handle, (alpha, seed, strategy), log))
            print(f"started {strategy} alpha={alpha} seed={seed} (log {log.name})", flush=True)
        time.sleep(2)
        for item in list(running):
            proc, handle, task, log = item
            if proc.poll() is None:
                continue
            handle.close()
            running.remove(item)
            if proc.returncode:
                failed.append(task)
                print(f"FAILED {task} (exit {proc.returncode}); see {log}", flush=True)
            else:
                log.unlink(missing_ok=True)
                print(f"finished {task}", flush=True)
                write_report(args, task[0], command)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    # children of --jobs record the command the user typed, not their narrowed one
    command = os.environ.get("CONDENSE_FL_COMMAND") or "python benchmarks/fl.py " + " ".join(raw_argv)
    os.environ["CONDENSE_FL_COMMAND"] = command
    alphas = [float(a) for a in args.alpha.split(",")]
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("CONDENSE_QUIET", "1")
    if args.encoding_ablation:
        for alpha in alphas:
            encoding_ablation(args, alpha, int(args.seeds.split(",")[0]), command)
        return 0
    if args.in_process:
        global INPROCESS
        INPROCESS = Path(args.inprocess_jsonl) if args.inprocess_jsonl else INPROCESS
        done = set()
        if args.skip_done and INPROCESS.exists():
            done = {(r["alpha"], r["seed"], r["method"], r["ipc"]) for r in map(json.loads, INPROCESS.read_text().splitlines())}
        if not args.report_only:
            for seed in args.seeds.split(","):
                for alpha in alphas:
                    if (alpha, int(seed), args.method, args.ipc) not in done:
                        oneshot_in_process(args, alpha, int(seed), command)
        if INPROCESS.exists():
            print(inprocess_table().read_text())
        return 0
    status = 0
    if not args.report_only:
        # seed-major: a grid stopped early has every alpha at the first seeds rather than one alpha at all seeds
        tasks = [
            (alpha, int(seed), strategy)
            for seed in args.seeds.split(",")
            for alpha in alphas
            for strategy in args.strategies.split(",")
        ]
        if args.jobs > 1:
            status = run_side_by_side(args, tasks, raw_argv, command)
        else:
            for alpha, seed, strategy in tasks:
                if args.skip_done and is_done(args, strategy, alpha, seed):  # checked per run: another process may share the grid
                    print(f"skip {strategy} alpha={alpha} seed={seed}: done", flush=True)
                    continue
                run_one(args, strategy, alpha, seed, command)
                if not args.no_report:
                    write_report(args, alpha, command)
    if args.no_report:
        return status
    for alpha in alphas:
        write_report(args, alpha, command)
    return status


if __name__ == "__main__":
    sys.exit(main())
