"""The ``condense`` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import importlib
import sys

from condense.errors import CondenseError
from condense.quiet_dependencies import quiet_known_notices

# Each module defines add_parser(subparsers) and sets a `run` default on its parser.
COMMANDS = ["distill", "evaluate", "show", "methods", "demo", "cl", "fl"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condense", description="Dataset distillation for continual and federated learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"condense.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_known_notices()
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CondenseError as exc:
        print(f"condense: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("condense: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
