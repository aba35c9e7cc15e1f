"""DM step speed, the loop of an earlier commit against the current one, in one run.

Both loops run the same public call (``condense(..., method="dm")``) on the
same data and settings; the earlier commit's ``condense/`` package is
extracted with ``git archive`` into a temporary folder and imported from there
by its own worker process (two versions of one package cannot share a
process). Workers of the two versions alternate (``--rounds`` each), every
worker times ``--steps`` steps after ``--warmup`` untimed ones through the
per-step callback, and the table reports the median step time of each version
and their ratio (new / old).

Example (MNIST, IPC 10, 256 real images per class, one thread)::

    nice -n 10 python benchmarks/step_speed.py --old a728a85 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from condense import condense, load_dataset
args = json.loads(sys.argv[2])
train, _ = load_dataset(args["data"])
stamps = []
condense(train, method="dm", ipc=args["ipc"], steps=1 + args["warmup"] + args["steps"], batch_real=args["batch_real"],
         amp=args["amp"], compile_real=False, seed=0, show_progress=False,
         callback=lambda step, x, y: stamps.append(time.perf_counter()))
# stamps are taken after each step: step i (i >= 1) took stamps[i] - stamps[i - 1]
times = [b - a for a, b in zip(stamps, stamps[1:])][args["warmup"]:]
import condense as pkg
print(json.dumps({"times": times, "package": pkg.__file__}))
"""


def extract(rev: str, into: Path) -> Path:
    """``condense/`` of commit ``rev`` under ``into`` (the package alone: enough for the core loop)."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "condense"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_worker(pythonpath: Path, threads: int, settings: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": str(threads), "CONDENSE_QUIET": "1"}
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads), json.dumps(settings)], env=env, check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", default="a728a85", help="commit whose loop is the baseline")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--batch-real", type=int, default=256)
    p.add_argument("--amp", default="auto")
    p.add_argument("--steps", type=int, default=4, help="timed steps per worker")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="alternating workers per version")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "step_speed.md"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    import torch

    from condense.reporting import machine_description, markdown_table

    torch.set_num_threads(args.threads)  # as the workers (the machine line reports it)

    amp = None if args.amp in ("none", "None") else args.amp
    settings = {"data": args.data, "ipc": args.ipc, "batch_real": args.batch_real, "amp": amp,
                "steps": args.steps, "warmup": args.warmup}
    old_rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.old], check=True, capture_output=True,
                             text=True).stdout.strip()
    new_rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                             text=True).stdout.strip()
    times: dict[str, list[float]] = {"old": [], "new": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        old_root = extract(args.old, Path(tmp))
        for r in range(args.rounds):
            for version, root in (("old", old_root), ("new", REPO)):
                got = run_worker(root, args.threads, settings)
                assert Path(got["package"]).resolve().is_relative_to(Path(root).resolve()), got["package"]
                times[version] += got["times"]
                print(f"round {r} {version}: " + ", ".join(f"{t:.3f}" for t in got["times"]), flush=True)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    rows = [[f"old ({old_rev})", f"{old:.3f}", f"{min(times['old']):.3f}", len(times["old"])],
            [f"new ({new_rev}{' + working tree' if _dirty() else ''})", f"{new:.3f}", f"{min(times['new']):.3f}", len(times["new"])]]
    table = markdown_table(["loop", "median s/step", "min s/step", "steps timed"], rows)
    command = "python benchmarks/step_speed.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    text = (f"# DM step speed: old loop against new\n\n"
            f"Data `{Path(args.data).name}`, DM, IPC {args.ipc}, {args.batch_real} real images per class, ConvNet-3 "
            f"width 128, amp={amp}, compile_real=False, {args.threads} thread(s); workers alternate, "
            f"{args.rounds} rounds x {args.steps} timed steps (after {args.warmup} warm-up) per version.\n\n"
            f"{table}\n\n**ratio new / old (median): {new / old:.3f}**\n\n"
            f"Command: `{command}` ({time.perf_counter() - started:.0f} s)\n\nMachine: {machine_description()}\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


def _dirty() -> bool:
    out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "condense"], capture_output=True, text=True)
    return bool(out.stdout.strip())


if __name__ == "__main__":
    raise SystemExit(main())
