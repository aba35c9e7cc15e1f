"""Arguments and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from condense.errors import CondenseError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default (argparse's own formatter, with wider columns)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """A sub-command parser whose ``--help`` lists each option's default."""
    return sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="digits, mnist, fashion-mnist, cifar10, cifar100, or a path to an .npz / image folder / .tar.gz")
    parser.add_argument("--root", default=None, help="folder holding a named dataset's files (or set $CONDENSE_DATA)")
    parser.add_argument("--download", action="store_true", help="let torchvision download a named dataset into --root")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (None: torch's choice)")


def check_device(text: str) -> str:
    """``text`` if torch can run on that device here; else a :class:`CondenseError` that says why."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise CondenseError(f"--device {text!r} is not a device name (cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CondenseError(f"--device {text}: no CUDA GPU is available here (torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CondenseError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CondenseError(f"--device {text}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CondenseError(f"--device {text}: condense runs on cpu, cuda or mps")
    return text


def setup_runtime(args: argparse.Namespace) -> None:
    """Check ``--device`` and ``--threads`` before any work, and apply ``--threads``."""
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise CondenseError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object as the last line (other tools parse it)."""
    print(json.dumps(obj, sort_keys=True, default=float), flush=True)
