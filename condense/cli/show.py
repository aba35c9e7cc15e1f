"""``condense show``: a PNG grid of a synthetic set, one row per class."""

from __future__ import annotations

import argparse

from condense.cli.common import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "show", "draw FILE.npz as a grid of images per class")
    p.add_argument("file", help="a synthetic set written by `condense distill`")
    p.add_argument("--png", required=True, help="output PNG")
    p.add_argument("--per-class", type=int, default=10, help="images drawn per class (one row each)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from condense import SyntheticSet
    from condense.plotting import save_image_grid

    syn = SyntheticSet.load(args.file)
    print(f"{syn}; wrote {save_image_grid(syn, args.png, args.per_class)}")
    return 0
