"""``condense distill``: condense a dataset into a synthetic-set file."""

from __future__ import annotations

import argparse
import json

from condense.cli.common import add_command, add_data_args, add_run_args, emit_json, setup_runtime
from condense.errors import CondenseError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "distill", "condense a dataset into FILE.npz")
    add_data_args(p)
    p.add_argument("--method", default="dm", help="a registry name (see `condense methods`)")
    p.add_argument("--ipc", type=int, default=10, help="images per class")
    p.add_argument("--steps", type=int, default=None,
                   help="optimisation steps of a distillation method (None: the method's own default, 1000 for dm)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=JSON",
                   help="a hyperparameter of the method, e.g. --param lr_img=0.5 (repeatable; names in the docs' method pages)")
    p.add_argument("--out", required=True, help="output .npz (written atomically)")
    p.add_argument("--checkpoint", default=None, metavar="FILE.npz",
                   help="save the run's state here as it goes; run the same command again to continue from it")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="steps between checkpoint saves")
    p.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    add_run_args(p)
    p.set_defaults(run=run)


def parse_params(items: list[str]) -> dict:
    """``KEY=VALUE`` strings as a dict; values are read as JSON (``0.5``, ``true``, ``{"width": 16}``), else kept as text."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CondenseError(f"--param needs KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def run(args: argparse.Namespace) -> int:
    from condense import condense, load_dataset
    from condense.api import make_condenser

    setup_runtime(args)
    params = parse_params(args.param)
    if args.steps is not None:
        params["steps"] = args.steps
    # Names and types are checked before the data is read: a typo costs no loading time.
    make_condenser(args.method, ipc=args.ipc, seed=args.seed, **params)
    train, _ = load_dataset(args.data, args.root, args.download)
    syn = condense(
        train, method=args.method, ipc=args.ipc, seed=args.seed,
        device=args.device, show_progress=not args.quiet, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, **params,
    )
    path = syn.save(args.out)
    resumed = syn.meta.get("resumed")
    note = f" (resumed from step {resumed['from_step']} of {args.checkpoint})" if resumed else ""
    print(f"wrote {path}: {syn} in {syn.meta.get('seconds')} s{note}")
    if args.json:
        emit_json({"path": str(path), "images": len(syn), "method": args.method, "ipc": args.ipc,
                   "seconds": syn.meta.get("seconds"), "bytes": syn.nbytes,
                   "resumed_from_step": resumed["from_step"] if resumed else None})
    return 0
