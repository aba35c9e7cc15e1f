"""``condense demo``: the main job on bundled digits, a few minutes on 2 CPU cores."""

from __future__ import annotations

import argparse
import importlib

from condense.cli.common import add_command
import time
from pathlib import Path

# Each section module defines run_section(out_dir: Path, quiet: bool, seed: int) -> str (Markdown).
DEMO_SECTIONS = ["condense.cli.demo_distill", "condense.cli.demo_fl", "condense.cli.demo_cl"]
SECTION_NAMES = tuple(m.rsplit("demo_", 1)[1] for m in DEMO_SECTIONS)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "demo", "why condense: condensed sets vs coresets, CL buffers and one-shot FL on bundled digits")
    p.add_argument("--out", default="out/demo", help="folder for the report (demo.md) and pictures")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--only", default=None, choices=SECTION_NAMES, help="run one section (None: all)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = ["# condense demo (bundled digits)\n"]
    for module_name in DEMO_SECTIONS:
        if args.only and module_name != f"condense.cli.demo_{args.only}":
            continue
        section = importlib.import_module(module_name)
        report.append(section.run_section(out, args.quiet, args.seed))
        print(report[-1], flush=True)
    report.append(f"\nTotal demo time: {time.perf_counter() - start:.0f} s")
    (out / "demo.md").write_text("\n".join(report) + "\n")
    print(report[-1])
    print(f"Report and pictures in {out}/")
    return 0
