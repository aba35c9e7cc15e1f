"""Distillation benchmark: methods x IPC x seeds on MNIST (or any dataset condense loads).

Every method condenses the training split, then ``--eval-models`` fresh
ConvNets are trained on the result for ``--eval-epochs`` epochs (DSA, SGD lr
0.01, momentum 0.9, wd 5e-4, lr x0.1 at half) and tested on the full test
split. Accuracy is reported as mean ± std over seeds (each seed's figure is
the mean over its evaluation models).

Examples::

    python benchmarks/distill_mnist.py --methods random,herding,kcenter,dm --ipc 1,10,50 --seeds 0,1
    python benchmarks/distill_mnist.py --methods dm --ipc 10 --seeds 0 --steps 500 --speed
    python benchmarks/distill_mnist.py --data cifar10 --root ../shared/data --ipc 1,10 --out benchmarks/results/distill_cifar10.md
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from condense import condense, evaluate, load_dataset
from condense.reporting import PeakMemory, machine_description, markdown_table, mean_std
from condense.synthetic_set import SyntheticSet
from saved_sets import SavedSets  # benchmarks/ is on sys.path when this file runs as a script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"
COMPONENTS = ("random", "herding", "kcenter")  # selection methods take no steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset name or path (default: the shared MNIST npz)")
    p.add_argument("--root", default=None)
    p.add_argument("--methods", default="random,herding,kcenter,dm")
    p.add_argument("--ipc", default="1,10,50")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=2000, help="steps for distillation methods")
    p.add_argument("--batch-real", type=int, default=None, help="real images per class per step (method default if unset)")
    p.add_argument("--param", action="append", default=[], metavar="METHOD:KEY=JSON", help="extra hyperparameter for one method")
    p.add_argument("--model-kwargs", default=None, metavar="JSON", help='ConvNet kwargs for distillation and evaluation, e.g. \'{"width": 32}\'')
    p.add_argument("--eval-models", type=int, default=3)
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--speed", action="store_true", help="also time a DM step against a straightforward implementation")
    p.add_argument("--speed-steps", type=int, default=3, help="interleaved rounds of 3 timed steps each")
    p.add_argument("--checkpoints", type=lambda v: [int(c) for c in v.split(",") if c], default=[],
                   help="also evaluate distillation runs at these steps, e.g. 200,500,1000")
    p.add_argument("--time-to", type=float, default=None,
                   help="report the condensation time of the first checkpoint reaching this accuracy (e.g. 0.96)")
    p.add_argument("--out", default=None, help="Markdown results file (default benchmarks/results/distill_<data>.md)")
    p.add_argument("--jsonl", default=None, help="append one JSON line per finished run to this file")
    p.add_argument("--skip-done", action="store_true",
                   help="skip (method, ipc, seed) runs whose final result is already in --jsonl")
    p.add_argument("--sets-dir", default=None,
                   help="save every condensed set (and snapshot) here before it is evaluated, and evaluate a saved "
                        "one instead of condensing again (same data, method, IPC, seed, steps, hyperparameters)")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="N",
                   help="with --sets-dir: steps between saves of a distillation run's state there; a run killed "
                        "midway continues from its last save when started again with the same flags")
    p.add_argument("--table-only", action="store_true", help="rebuild the tables from --jsonl without running anything")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def method_params(args: argparse.Namespace, method: str) -> dict:
    params: dict = {}
    if method not in COMPONENTS:
        params["steps"] = args.steps
        if args.batch_real:
            params["batch_real"] = args.batch_real
        if args.model_kwargs:
            params["model_kwargs"] = json.loads(args.model_kwargs)
    for item in args.param:
        name, _, kv = item.partition(":")
        key, _, value = kv.partition("=")
        if name == method:
            params[key] = json.loads(value)
    return params


def finished_runs(args: argparse.Namespace) -> set[tuple]:
    """(method, ipc, seed, steps) of every run already recorded in ``--jsonl`` (for ``--skip-done``)."""
    done: set[tuple] = set()
    if args.skip_done and args.jsonl and Path(args.jsonl).exists():
        for line in Path(args.jsonl).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done.add((r["method"], r["ipc"], r["seed"], r["steps"]))
    return done


def condense_with_snapshots(args: argparse.Namespace, train, method: str, ipc: int, seed: int, params: dict,
                            steps: int, marks: set[int], checkpoint: Path | None = None,
                            ) -> tuple[list[tuple[int, float, SyntheticSet]], float]:
    """Condense once (continuing from ``checkpoint`` when it holds an earlier part of the run).

    Returns ``(step, condensation seconds so far, set)`` for every step in
    ``marks`` this process reached (a resumed run has none before its resume
    step) and for the final set (at ``steps``), and the peak memory in MiB.
    """
    snaps: dict[int, tuple[float, torch.Tensor]] = {}
    start = time.perf_counter()

    def keep(step: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        if step + 1 in marks:
            snaps[step + 1] = (time.perf_counter() - start, images.detach().cpu().clone())

    extra = {"callback": keep} if marks else {}
    if checkpoint is not None:
        extra.update(checkpoint=checkpoint, checkpoint_every=args.checkpoint_every)
    with PeakMemory() as mem:
        syn = condense(train, method=method, ipc=ipc, seed=seed, device=args.device,
                       show_progress=not args.quiet, **params, **extra)
    resumed = syn.meta.get("resumed", {"from_step": 0, "earlier_seconds": 0.0})
    earlier = resumed["earlier_seconds"]
    if resumed["from_step"]:
        lost = "; snapshots before it are not evaluated" if any(m <= resumed["from_step"] for m in marks) else ""
        print(f"{method} ipc {ipc} seed {seed}: continued from step {resumed['from_step']} of {checkpoint}{lost}", flush=True)
    versions = [(c, earlier + t, dataclasses.replace(syn, images=x))  # keeps the typed fields
                for c, (t, x) in sorted(snaps.items())]
    return [*versions, (steps, earlier + time.perf_counter() - start, syn)], mem.peak_mib


def evaluation_record(args: argparse.Namespace, test, version: SyntheticSet, method: str, ipc: int, seed: int,
                      at_step: int, seconds: float, peak_mib: float, params: dict) -> dict:
    """Evaluate one set under the benchmark's protocol and return its JSONL record."""
    model_kwargs = json.loads(args.model_kwargs) if args.model_kwargs else None
    eval_start = time.perf_counter()
    result = evaluate(version, test, models=args.eval_models, epochs=args.eval_epochs, seed=seed,
                      device=args.device, model_kwargs=model_kwargs, show_progress=not args.quiet)
    return {"method": method, "ipc": ipc, "seed": seed, "accuracy": result.mean,
            "model_accuracies": result.accuracies, "seconds": seconds, "steps": at_step,
            "peak_mib": peak_mib, "bytes": version.nbytes, "soft_labels": result.soft_labels,
            "params": params, "threads": torch.get_num_threads(),
            "eval_seconds": round(time.perf_counter() - eval_start, 1)}


def run_grid(args: argparse.Namespace, train, test) -> tuple[list[dict], list[list]]:
    """Condense and evaluate every (IPC, method, seed). Distillation methods also
    keep snapshots at ``--checkpoints`` steps (with the condensation time so far),
    each evaluated after the run like the final set and recorded as its own row."""
    store = SavedSets(args.sets_dir) if args.sets_dir else None
    data_name = dataset_name(args)
    records = []
    done = finished_runs(args)
    ipcs = [int(v) for v in args.ipc.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    for ipc, method, seed in itertools.product(ipcs, args.methods.split(","), seeds):
        params = method_params(args, method)
        steps = params.get("steps", 0) if method not in COMPONENTS else 0
        if (method, ipc, seed, steps) in done:
            print(f"skip {method} ipc {ipc} seed {seed}: in {args.jsonl}", flush=True)
            continue
        marks = {c for c in args.checkpoints if 0 < c < steps}
        keys = [{"data": data_name, "method": method, "ipc": ipc, "seed": seed, "step": at, "run_steps": steps,
                 "params": params} for at in [*sorted(marks), steps]]
        saved = [store.load(k) for k in keys] if store else []
        reused = bool(saved) and all(saved)
        if reused:  # condensed by an earlier run that did not finish evaluating
            print(f"{method} ipc {ipc} seed {seed}: evaluating the sets saved in {args.sets_dir}", flush=True)
            versions = [(k["step"], secs, version) for k, (version, secs, _) in zip(keys, saved)]
            peak_mib = saved[-1][2]
        else:
            checkpoint = store.checkpoint_path(keys[-1]) if store and method not in COMPONENTS else None
            versions, peak_mib = condense_with_snapshots(args, train, method, ipc, seed, params, steps, marks, checkpoint)
            keys = [{**keys[-1], "step": at} for at, _, _ in versions]  # a resumed run may lack early snapshots
            if store:  # before evaluating: a run cut short during evaluation keeps its sets
                for key, (_, secs, version) in zip(keys, versions):
                    store.save(version, key, secs, peak_mib)
        for key, (at_step, secs, version) in zip(keys, versions):
            rec = evaluation_record(args, test, version, method, ipc, seed, at_step, secs, peak_mib, params)
            if store:
                rec.update(saved_set=str(store.path(key)), condensed_earlier=reused)
            records.append(rec)
            print(json.dumps(rec), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:  # a cut-short run keeps what finished
                    fh.write(json.dumps(rec) + "\n")
    return records, summary_rows(records)


def summary_rows(records: list[dict]) -> list[list]:
    """One row per (IPC, method): accuracy mean ± std over seeds, time, memory, bytes."""
    rows = []
    for ipc in sorted({r["ipc"] for r in records}):
        for method in dict.fromkeys(r["method"] for r in records):
            for steps in sorted({r["steps"] for r in records if r["ipc"] == ipc and r["method"] == method}):
                rs = [r for r in records if r["ipc"] == ipc and r["method"] == method and r["steps"] == steps]
                sec = statistics.fmean(r["seconds"] for r in rs)
                timed = [r["eval_seconds"] for r in rs if "eval_seconds" in r]  # older records lack it
                rows.append([method, ipc, steps if steps else "-", len(rs), mean_std([r["accuracy"] for r in rs]),
                             f"{sec:.1f}", f"{sec / steps:.3f}" if steps else "-",
                             f"{statistics.fmean(timed):.0f}" if timed else "-",
                             f"{max(r['peak_mib'] for r in rs):.0f}", rs[0]["bytes"]])
    return rows


def time_to_accuracy(records: list[dict], target: float) -> str:
    """Per distillation run, the condensation time of its first checkpoint at or above ``target``."""
    rows = []
    runs = dict.fromkeys((r["method"], r["ipc"], r["seed"]) for r in records if r["steps"])
    for method, ipc, seed in runs:
        rs = sorted((r for r in records if (r["method"], r["ipc"], r["seed"]) == (method, ipc, seed)), key=lambda r: r["steps"])
        hit = next((r for r in rs if r["accuracy"] >= target), None)
        curve = ", ".join(f"{r['steps']}: {100 * r['accuracy']:.2f}" for r in rs)
        rows.append([method, ipc, seed, f"{hit['steps']} steps, {hit['seconds']:.0f} s" if hit else "not reached", curve])
    return markdown_table(["method", "ipc", "seed", f"time to {100 * target:.1f}%", "accuracy % by steps"], rows)


# ---------------------------------------------------------------- speed check
def straightforward_dm_step(net, real_by_class, syn, ipc, opt) -> None:
    """DM as commonly first written: a Python loop over classes, real embeddings
    computed with autograd on and then detached, fp32, no augmentation."""
    loss = torch.zeros(())
    for c, xr in enumerate(real_by_class):
        er = net.embed(xr).detach()
        es = net.embed(syn[c * ipc : (c + 1) * ipc])
        loss = loss + ((er.mean(0) - es.mean(0)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def speed_check(args: argparse.Namespace, train) -> str:
    """Median seconds per DM step at IPC 10 with 256 real images per class, ours vs
    :func:`straightforward_dm_step`, interleaved in rounds so that load on the
    machine affects both alike."""
    from condense.methods.dm import DistributionMatching
    from condense.models import build_model
    from condense.real_data import RealData
    from condense.samplers import reinitialize

    ipc, per_class, k, rounds = 10, 256, 3, max(1, args.speed_steps)
    stamps: list[float] = []

    def ours(compile_real: bool) -> DistributionMatching:
        return DistributionMatching(ipc=ipc, steps=k + 1, batch_real=per_class, dsa=False, seed=0, show_progress=False,
                                    compile_real=compile_real, device=args.device,
                                    callback=lambda step, images, labels: stamps.append(time.perf_counter()))

    eager, fused = ours(False), ours(True)
    t0 = time.perf_counter()
    fused.set_params(steps=1).fit(train)  # compiles once per process; timed apart
    compile_s = time.perf_counter() - t0
    fused.set_params(steps=k + 1)
    real = RealData.prepare(train, ipc=ipc)
    gen = torch.Generator().manual_seed(0)
    net = build_model("convnet", tuple(real.x.shape[1:]), real.num_classes)
    syn = real.x[torch.cat([real.index_by_class[c][:ipc] for c in real.classes])].clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    times: dict[str, list[float]] = {"plain": [], "eager": [], "fused": []}
    for _ in range(rounds):
        for name, model in (("eager", eager), ("fused", fused)):
            stamps.clear()
            model.fit(train)
            times[name] += [b - a for a, b in zip(stamps, stamps[1:])]  # the first step is warm-up
        for step in range(k + 1):
            t0 = time.perf_counter()
            reinitialize(net, gen)
            batches = [real.class_images(c)[torch.randperm(len(real.index_by_class[c]), generator=gen)[:per_class]]
                       for c in real.classes]
            straightforward_dm_step(net, batches, syn, ipc, opt)
            if step:
                times["plain"].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    table = markdown_table(
        ["implementation", "median s / DM step (IPC 10, 256 real/class)", "speed-up"],
        [["straightforward (class loop, autograd on, fp32)", f"{med['plain']:.3f}", "1.0x"],
         [f"condense dm, compile_real=False (batched, no-grad, chunked, amp={eager.amp})", f"{med['eager']:.3f}",
          f"{med['plain'] / med['eager']:.1f}x"],
         ["condense dm, compile_real=True (the default for >= 500 steps)", f"{med['fused']:.3f}",
          f"{med['plain'] / med['fused']:.1f}x"]],
    )
    print(table, flush=True)
    return (table + f"\n\n{len(times['plain'])} timed steps per row in {rounds} interleaved rounds; "
            f"the one-off compilation (first fit of one step, included in every run of >= 500 steps) took {compile_s:.1f} s.")


def dataset_name(args: argparse.Namespace) -> str:
    """The name results and saved sets are filed under: a file's stem, else the dataset name."""
    return Path(args.data).stem if Path(args.data).exists() else args.data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = dataset_name(args)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"distill_{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    train, test = (None, None) if args.table_only else load_dataset(args.data, args.root)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sections = [
        f"# Distillation benchmark: {name}\n",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`  ",
        f"Machine: {machine_description()}  ",
    ]
    if args.table_only:  # the runs happened earlier: the machine's state now says nothing about them
        sections.append(f"Table rebuilt {started} from the records in `{args.jsonl}` (each with its own times).\n")
    else:
        sections += [f"Started: {started}\n",
                     f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times scale with it).\n"]
    if args.methods and not args.table_only:
        sections.append(
        f"Protocol: {len(train)} train / {len(test)} test images; distillation methods {args.steps} steps"
        f"{f', {args.batch_real} real images per class per step' if args.batch_real else ''}; evaluation "
        f"{args.eval_models} ConvNets x {args.eval_epochs} epochs with DSA; accuracy mean ± std over seeds "
        f"({args.seeds}); time and peak memory (RSS above the start of the run) are for condensation alone.\n")
    if args.speed:
        sections += ["## DM step time\n", speed_check(args, train), ""]
    if args.table_only:
        records = [json.loads(line) for line in Path(args.jsonl).read_text().splitlines() if line.strip()]
        rows = summary_rows(records)
    elif args.methods:
        records, rows = run_grid(args, train, test)
    if args.table_only or args.methods:
        table = markdown_table(["method", "ipc", "steps", "seeds", "accuracy %", "condense s", "s / step", "evaluate s", "peak MiB", "bytes"], rows)
        print(table)
        best = []
        last = {}  # checkpoints aside: each run's final set
        for r in records:
            key = (r["method"], r["ipc"], r["seed"])
            if key not in last or r["steps"] >= last[key]["steps"]:
                last[key] = r
        final = list(last.values())
        for ipc in sorted({r["ipc"] for r in final}):
            by_method = {}
            for r in final:
                if r["ipc"] == ipc:
                    by_method.setdefault(r["method"], []).append(r["accuracy"])
            top = max(by_method, key=lambda m: statistics.fmean(by_method[m]))
            best.append(f"- IPC {ipc}: best method **{top}** ({100 * statistics.fmean(by_method[top]):.2f}%)")
        sections += ["## Accuracy\n", table, "", *best, ""]
        out.with_suffix(".json").write_text(json.dumps(records, indent=1))
        plot(final, out.with_suffix(".png"), name)
        sections.append(f"Plot: `{out.with_suffix('.png').name}`\n")
    if args.time_to and (args.table_only or args.methods):
        sections += ["## Time to accuracy\n", time_to_accuracy(records, args.time_to),
                     "\nCondensation time only (snapshots are evaluated after the run).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(sections) + "\n")
    print(f"wrote {out}")
    return 0


def plot(records: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in records):
        ipcs = sorted({r["ipc"] for r in records if r["method"] == method})
        means = [100 * statistics.fmean(r["accuracy"] for r in records if r["method"] == method and r["ipc"] == i) for i in ipcs]
        ax.plot(ipcs, means, marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("images per class")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"{name}: condensed vs selected sets")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
