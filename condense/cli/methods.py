"""``condense methods``: what ``--method`` takes."""

from __future__ import annotations

import argparse

from condense.cli.common import add_command, emit_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "methods", "list the methods by family")
    p.add_argument("--json", action="store_true", help="end with one JSON line listing the methods")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from condense.registry import available_methods

    methods = available_methods()
    width = max(len(m.name) for m in methods)
    fam = max(len(m.family) for m in methods)
    for m in methods:
        print(f"{m.name:<{width}}  {m.family:<{fam}}  {m.summary}")
    if args.json:
        emit_json({"methods": [{"name": m.name, "family": m.family, "summary": m.summary} for m in methods]})
    return 0
