"""MTT meta-gradient: autograd memory and time per step against the number of unrolled student steps.

For each ``meta_gradient`` mode (``exact`` reverse sweep with recomputation,
``tesla``, ``unrolled`` as the original MTT) and each ``syn_steps``, one MTT
objective + backward on MNIST-shaped synthetic data (IPC 10 by default) is
run under :class:`condense.autograd_memory.SavedTensorMeter`, which counts the
bytes autograd saves for backward. The expert segment is random (memory and
time do not depend on its values), so no expert buffer is needed.

    python benchmarks/mtt_memory.py --ipc 10 --syn-steps 5,10,20 --width 32 --threads 1
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from condense.autograd_memory import SavedTensorMeter
from condense.experts import ExpertBuffer, flatten_parameters, parameter_shapes
from condense.data.tensor_data import TensorData
from condense.methods.base import StepBatch
from condense.methods.mtt import ExpertSegment, TrajectoryMatching
from condense.models import build_model
from condense.normalization import Normalization
from condense.real_data import RealData
from condense.reporting import machine_description, markdown_table

REPO = Path(__file__).resolve().parents[1]


def measure(mode: str, syn_steps: int, ipc: int, width: int, buffer_path: Path, seed: int = 0) -> tuple[float, float]:
    """(peak saved MiB, seconds) of one objective + backward."""
    method = TrajectoryMatching(ipc=ipc, syn_steps=syn_steps, meta_gradient=mode, model_kwargs={"width": width},
                                expert_path=str(buffer_path), max_start_epoch=1, expert_epochs=1, show_progress=False)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(10 * ipc, 1, 28, 28, generator=gen)
    labels = torch.arange(10).repeat_interleave(ipc)
    real = RealData.prepare(TensorData(images, labels, 10, name="random"), "cpu", Normalization((0.0,), (1.0,)))
    state = method.init_state(real)
    segment: ExpertSegment = state.sampler.sample(0)
    start = time.perf_counter()
    with SavedTensorMeter() as meter:
        loss = method.objective(StepBatch(0, segment, None, None, None, state.images, state.labels, state.groups, 10), state)
        loss.backward()
    return meter.peak_mib, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--syn-steps", default="5,10,20")
    p.add_argument("--modes", default="exact,tesla,unrolled")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mtt_memory.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net = build_model("convnet", (1, 28, 28), 10, width=args.width)
    flat = flatten_parameters(net)
    meta = {"model": "convnet", "model_kwargs": {"width": args.width}, "image_shape": [1, 28, 28], "num_classes": 10,
            "parameter_shapes": [[n, list(s)] for n, s in parameter_shapes(net)], "normalization": None}
    buffer_path = out.with_name("_mtt_memory_buffer.npz")
    ExpertBuffer([torch.stack([flat, flat + 0.01 * torch.randn_like(flat)])], meta).save(buffer_path)
    rows, records = [], []
    try:
        for mode in args.modes.split(","):
            for n in [int(v) for v in args.syn_steps.split(",")]:
                mib, sec = measure(mode, n, args.ipc, args.width, buffer_path)
                records.append((mode, n, mib, sec))
                rows.append([mode, n, f"{mib:.1f}", f"{sec:.2f}"])
                print(rows[-1], flush=True)
    finally:
        buffer_path.unlink(missing_ok=True)
    table = markdown_table(["meta_gradient", "syn_steps", "peak autograd-saved MiB", "s / outer step"], rows)
    print(table)
    plot(records, out.with_suffix(".png"))
    text = [
        "# MTT meta-gradient memory vs unrolled steps\n",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`  ",
        f"Machine: {machine_description()}\n",
        f"One MTT objective + backward, MNIST shape (1x28x28, padded to 32), IPC {args.ipc} "
        f"({10 * args.ipc} images, the whole set per student step), ConvNet-3 width {args.width}, DSA on. "
        "Memory is the peak of tensors autograd saved for backward (saved-tensor hooks), not RSS. "
        "`exact` additionally keeps one parameter vector per student step "
        f"({flat.numel() * 4 / 2**20:.2f} MiB each here), outside autograd.\n",
        table,
        f"\nPlot: `{out.with_suffix('.png').name}`\n",
    ]
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")
    return 0


def plot(records: list[tuple[str, int, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode in dict.fromkeys(r[0] for r in records):
        pts = [(n, mib) for m, n, mib, _ in records if m == mode]
        ax.plot([n for n, _ in pts], [mib for _, mib in pts], marker="o", label=mode)
    ax.set_xlabel("unrolled student steps (syn_steps)")
    ax.set_ylabel("peak autograd-saved MiB")
    ax.set_title("MTT meta-gradient memory")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
