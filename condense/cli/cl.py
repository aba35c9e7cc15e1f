"""``condense cl``: a class- or task-incremental run with a condensed (or Avalanche) replay buffer."""

from __future__ import annotations

import argparse
import json
import statistics

from condense.cli.common import add_command, add_data_args, emit_json, setup_runtime


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "cl", "continual learning (Avalanche) with a condensed replay buffer")
    add_data_args(p)
    p.add_argument("--experiences", type=int, default=5, help="experiences to split the classes into")
    p.add_argument("--memory", type=int, default=100, help="buffer budget in images of the input's size")
    p.add_argument("--buffer", default="dm",
                   help="a condense method (dm, herding, kcenter, random, ...), none, avalanche-random or avalanche-herding")
    p.add_argument("--mode", choices=("replay", "buffer-only"), default="replay",
                   help="replay: mix buffer samples into each minibatch; buffer-only: GDumb-style, retrain on the buffer")
    p.add_argument("--strategy", choices=("naive", "ewc", "lwf"), default="naive", help="Avalanche strategy the buffer plugs into")
    p.add_argument("--epochs", type=int, default=1, help="epochs per experience (replay mode)")
    p.add_argument("--buffer-epochs", type=int, default=30, help="epochs on the buffer per experience (buffer-only mode)")
    p.add_argument("--task-incremental", action="store_true", help="task labels per experience and one output head per task (off: class-incremental, one head)")
    p.add_argument("--buffer-share", type=float, default=0.5, help="fraction of each replay minibatch from the buffer")
    p.add_argument("--buffer-loss-weight", type=float, default=1.0, help="loss weight of buffer samples")
    p.add_argument("--augment", action="store_true", help="DSA augmentation of buffer samples")
    p.add_argument("--method-args", default="{}", help='JSON hyperparameters of the method, e.g. \'{"steps": 100}\'')
    p.add_argument("--resize", default="herding", help="method that shrinks older classes (herding, dm, random, ...)")
    p.add_argument("--total-classes", type=int, default=None, help="fix every class's share at memory / this from the start")
    p.add_argument("--seeds", default="0", help="comma list of seeds (class order, init, condensation)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (None: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    setup_runtime(args)
    from condense.cli.extras import require_extra

    require_extra("avalanche", "avalanche", "condense cl")
    from condense.errors import CondenseError
    from condense.reporting import mean_std
    from condense.strategies import CLConfig, run_cl, split_dataset

    try:
        method_kwargs = json.loads(args.method_args)
    except json.JSONDecodeError as exc:
        raise CondenseError(f"--method-args is not valid JSON: {exc}") from exc
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise CondenseError(f"--seeds must be integers separated by commas, got {args.seeds!r}") from exc
    if not seeds:
        raise CondenseError("--seeds is empty")
    cfg = CLConfig(
        buffer=args.buffer, mode=args.mode, memory=args.memory, strategy=args.strategy, epochs=args.epochs,
        buffer_epochs=args.buffer_epochs, buffer_share=args.buffer_share, buffer_loss_weight=args.buffer_loss_weight,
        augment=args.augment, method_kwargs=method_kwargs, resize_method=args.resize, total_classes=args.total_classes,
    )
    results = []
    for seed in seeds:
        bench, _, _ = split_dataset(args.data, args.root, args.experiences, args.task_incremental, seed)
        r = run_cl(bench, cfg, seed=seed, device=args.device, show_progress=not args.quiet)
        results.append(r)
        if not args.json or not args.quiet:
            print(f"seed {seed}: accuracy after each experience {[round(a * 100, 2) for a in r.accuracy_after_each]}, "
                  f"final {r.final_accuracy * 100:.2f}%, forgetting {r.forgetting * 100:.2f}%, {r.seconds:.1f} s", flush=True)
    finals = [r.final_accuracy for r in results]
    forgets = [r.forgetting for r in results]
    print(f"{cfg.label()}: final accuracy {mean_std(finals)} %, forgetting {mean_std(forgets)} % over seeds {seeds}")
    if args.json:
        emit_json({
            "configuration": cfg.label(),
            "final_accuracy_mean": statistics.fmean(finals),
            "final_accuracy_std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
            "forgetting_mean": statistics.fmean(forgets),
            "forgetting_std": statistics.pstdev(forgets) if len(forgets) > 1 else 0.0,
            "seeds": seeds,
            "runs": [r.to_json() for r in results],
        })
    return 0
