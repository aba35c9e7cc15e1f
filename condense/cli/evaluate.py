"""``condense evaluate``: the standard protocol on a synthetic-set file."""

from __future__ import annotations

import argparse

from condense.cli.common import add_command, add_data_args, add_run_args, emit_json, setup_runtime


def learning_rate(text: str) -> float | str:
    """``auto`` or a positive number (argparse type)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr must be 'auto' or a positive number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--lr must be positive, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "evaluate", "train fresh networks on FILE.npz and test on real data")
    p.add_argument("file", help="a synthetic set written by `condense distill`")
    add_data_args(p)
    p.add_argument("--models", type=int, default=5, help="networks trained from scratch")
    p.add_argument("--epochs", type=int, default=300, help="training epochs of each network")
    p.add_argument("--model", default="convnet", help="convnet, mlp or resnet")
    p.add_argument("--no-dsa", action="store_true", help="train without DSA augmentation")
    p.add_argument("--lr", default="auto", type=learning_rate,
                   help="SGD learning rate; 'auto': the rate the method learned (MTT) if the set has one, else 0.01")
    p.add_argument("--json", action="store_true", help="end with one JSON line: accuracy_mean, accuracy_std, models, ...")
    add_run_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from condense import SyntheticSet, evaluate, load_dataset

    setup_runtime(args)
    syn = SyntheticSet.load(args.file)
    _, test = load_dataset(args.data, args.root, args.download)
    result = evaluate(syn, test, models=args.models, epochs=args.epochs, seed=args.seed, model=args.model,
                      dsa=not args.no_dsa, lr=args.lr, device=args.device, show_progress=not args.quiet)
    print(f"{args.file}: {result}")
    if args.json:
        emit_json(result.to_json())
    return 0
