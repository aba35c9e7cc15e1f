"""Class-incremental Split-MNIST (5 experiences x 2 classes): condensed replay vs Avalanche's buffers.

Every configuration trains Avalanche's ``SimpleMLP`` with SGD (lr 0.01,
momentum 0.9, batch 128) on the same stream (class order from the seed) and
reports Avalanche's stream accuracy after the last experience and its stream
forgetting. The anchors are Avalanche's own ``ReplayPlugin`` (random),
``ParametricBuffer`` + ``HerdingSelectionStrategy`` and ``GDumbPlugin``.

Results are appended one JSON line per run to ``--jsonl`` (so a cut-short
run keeps what finished) and the Markdown table is rebuilt from that file.

    .venv/bin/python benchmarks/cl_split_mnist.py --memory 100 --seeds 0,1,2 --threads 1
    .venv/bin/python benchmarks/cl_split_mnist.py --configs dm-replay,gdumb --seeds 0
    .venv/bin/python benchmarks/cl_split_mnist.py --table-only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from condense.reporting import machine_description, markdown_table, mean_std, peak_rss_mib
from condense.strategies import CLConfig, run_cl, split_dataset

# DM on CPU, cheap enough per experience: a small random ConvNet, few steps, 64 real images per class per step.
DM = {"steps": 100, "batch_real": 64, "model_kwargs": {"width": 32}}
DM300 = {"steps": 300, "batch_real": 64, "model_kwargs": {"width": 32}}
DM_MLP = {"steps": 200, "batch_real": 64, "model": "mlp"}
# IDM at DM300's settings: 300 steps, 64 real images per class, ConvNet width 32; its own defaults otherwise
# (factor 2: each stored image packs 4 tiles of 14x14, expanded to 4 training images at replay).
IDM300 = {"steps": 300, "batch_real": 64, "model_kwargs": {"width": 32}}
IDM = {"steps": 100, "batch_real": 64, "model_kwargs": {"width": 32}}  # at DM's 100-step settings
BUFFER_EPOCHS = 200


def configs(memory: int) -> dict[str, CLConfig]:
    """Named configurations; the anchors first."""
    m = memory
    return {
        "naive": CLConfig(buffer="none", memory=m),
        "av-random": CLConfig(buffer="avalanche-random", memory=m),
        "av-herding": CLConfig(buffer="avalanche-herding", memory=m),
        "gdumb": CLConfig(buffer="avalanche-random", mode="buffer-only", memory=m, buffer_epochs=BUFFER_EPOCHS),
        # condensed (DM), both modes
        "dm-replay": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10),
        "dm-buffer": CLConfig(buffer="dm", mode="buffer-only", memory=m, method_kwargs=DM, total_classes=10,
                              buffer_epochs=BUFFER_EPOCHS, augment=True),
        "dm-buffer-noaug": CLConfig(buffer="dm", mode="buffer-only", memory=m, method_kwargs=DM, total_classes=10,
                                    buffer_epochs=BUFFER_EPOCHS),
        "dmmlp-buffer": CLConfig(buffer="dm", mode="buffer-only", memory=m, method_kwargs=DM_MLP, total_classes=10,
                                 buffer_epochs=BUFFER_EPOCHS, augment=True),
        "dm300-buffer": CLConfig(buffer="dm", mode="buffer-only", memory=m, method_kwargs=DM300, total_classes=10,
                                 buffer_epochs=BUFFER_EPOCHS, augment=True),
        "dm300-replay-share0.75-w2": CLConfig(buffer="dm", memory=m, method_kwargs=DM300, total_classes=10,
                                              buffer_share=0.75, buffer_loss_weight=2.0),
        "idm-buffer": CLConfig(buffer="idm", mode="buffer-only", memory=m, method_kwargs=IDM, total_classes=10,
                               buffer_epochs=BUFFER_EPOCHS, augment=True),
        "idm300-buffer": CLConfig(buffer="idm", mode="buffer-only", memory=m, method_kwargs=IDM300, total_classes=10,
                                  buffer_epochs=BUFFER_EPOCHS, augment=True),
        "random-buffer": CLConfig(buffer="random", mode="buffer-only", memory=m, total_classes=10,
                                  buffer_epochs=BUFFER_EPOCHS, augment=True),
        # mixing options (replay mode)
        "dm-replay-share0.25": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10, buffer_share=0.25),
        "dm-replay-share0.75": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10, buffer_share=0.75),
        "dm-replay-w0.5": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10, buffer_loss_weight=0.5),
        "dm-replay-w2": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10, buffer_loss_weight=2.0),
        "dm-replay-share0.75-w2": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10,
                                           buffer_share=0.75, buffer_loss_weight=2.0),
        "dm-replay-dsa": CLConfig(buffer="dm", memory=m, method_kwargs=DM, total_classes=10, augment=True),
        # the resize choice: adaptive shares (classes shrink as new ones arrive), DM with an MLP embedding
        "dmmlp-replay-resize-herding": CLConfig(buffer="dm", memory=m, method_kwargs=DM_MLP, resize_method="herding"),
        "dmmlp-replay-resize-dm": CLConfig(buffer="dm", memory=m, method_kwargs=DM_MLP, resize_method="dm",
                                           resize_kwargs=DM_MLP),
        "dmmlp-replay-resize-random": CLConfig(buffer="dm", memory=m, method_kwargs=DM_MLP, resize_method="random"),
        "dmmlp-replay-fixed": CLConfig(buffer="dm", memory=m, method_kwargs=DM_MLP, total_classes=10),
        # our coreset buffers through the same plugin
        "herding-replay": CLConfig(buffer="herding", memory=m, total_classes=10, method_kwargs={"features": "random"}),
    }


DEFAULT_ORDER = ["naive", "av-random", "gdumb", "dm-replay", "dm-buffer", "dm-replay-share0.25", "dm-replay-w2",
                 "dm-replay-dsa", "dmmlp-replay-resize-herding", "dmmlp-replay-resize-dm", "dmmlp-replay-fixed",
                 "av-herding"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/work/shared/data/mnist.npz")
    p.add_argument("--configs", default=",".join(DEFAULT_ORDER), help=f"comma list from: {', '.join(configs(100))}")
    p.add_argument("--memory", default="100", help="comma list, e.g. 100,200")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jsonl", default="benchmarks/results/cl_split_mnist.jsonl")
    p.add_argument("--out", default="benchmarks/results/cl_split_mnist.md")
    p.add_argument("--table-only", action="store_true", help="rebuild the table from --jsonl")
    p.add_argument("--skip-done", action="store_true", help="skip (seed, memory, config) runs already in --jsonl")
    p.add_argument("--cache-dir", default=None, help="keep condensation results here (npz) to reuse across invocations")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    jsonl = Path(args.jsonl)
    if not args.table_only:
        if not Path(args.data).exists():
            print(f"{args.data} not found", file=sys.stderr)
            return 2
        names = [c for c in args.configs.split(",") if c]
        unknown = [c for c in names if c not in configs(100)]
        if unknown:
            p.error(f"unknown config(s) {unknown}")
        cache = DiskCache(Path(args.cache_dir)) if args.cache_dir else {}
        done = _done(jsonl) if args.skip_done else set()
        benches: dict[int, Any] = {}
        seeds = [int(s) for s in args.seeds.split(",")]
        memories = [int(m) for m in args.memory.split(",")]
        # Configuration-major: each configuration gets all its seeds before the next one starts,
        # so a run cut short still has complete rows for the configurations listed first.
        for memory in memories:
            for name in names:
                for seed in seeds:
                    if (seed, memory, name) in done:
                        continue
                    if seed not in benches:
                        benches[seed] = split_dataset(args.data, n_experiences=5, seed=seed)[0]
                    cfg = configs(memory)[name]
                    start = time.perf_counter()
                    result = run_cl(benches[seed], cfg, seed=seed, device=args.device, show_progress=False, cache=cache)
                    row = {"name": name, "label": cfg.label(), "memory": memory, **result.to_json(),
                           "wall": round(time.perf_counter() - start, 1), "peak_rss_mib": round(peak_rss_mib())}
                    jsonl.parent.mkdir(parents=True, exist_ok=True)
                    with jsonl.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"seed {seed} mem {memory} {name}: final {result.final_accuracy:.4f} "
                          f"forgetting {result.forgetting:.4f} after-each {[round(a, 3) for a in result.accuracy_after_each]} "
                          f"condense s {result.condense_seconds} wall {row['wall']}", flush=True)
    table = build_table(jsonl)
    command = "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:]))
    text = (
        "# Split-MNIST, class-incremental, 5 experiences x 2 classes\n\n"
        f"Machine: {machine_description()}. Command (last invocation): `{command}`; rows come from every run "
        f"recorded in `{jsonl}`.\n\n"
        "Protocol: Avalanche 0.6 `nc_benchmark` over MNIST (60k/10k, pixels in [0, 1]), class order from the seed; "
        "`SimpleMLP` (512 hidden, dropout 0.5), SGD lr 0.01 momentum 0.9, batch 128; replay modes train 1 epoch per "
        f"experience (minibatch extended by buffer samples), buffer-only modes (GDumb, condensed buffer-only) reset the "
        f"model and train {BUFFER_EPOCHS} epochs on the buffer alone at each experience. Final accuracy = Avalanche "
        "`Top1_Acc_Stream` on the whole test stream after the last experience; forgetting = `StreamForgetting`. "
        f"`dm-*`: DM {json.dumps(DM)} (random ConvNet width 32); `dm300-*`: {json.dumps(DM300)}; `dmmlp-*`: "
        f"{json.dumps(DM_MLP)} (random MLP embedding); `idm-*`: IDM {json.dumps(IDM)}, `idm300-*`: {json.dumps(IDM300)} "
        "(IDM's defaults otherwise: factor 2, so each of the memory's images packs 4 tiles of 14x14 and buffer-only "
        "training sees 4 x memory expanded images for the same bytes; a queue of briefly trained ConvNets; CE term). 'fixed share' = `total_classes=10` "
        "(every class gets memory/10 images from the start); otherwise shares adapt (memory/classes seen) and older "
        "classes shrink with the named resize method. Wall = whole run (train + condense + evaluate) per experience; "
        "condense s = DM time per experience, measured on the first run that condensed it (later configurations "
        "with the same DM settings reuse the cached result).\n\n"
        f"{table}\n"
    )
    Path(args.out).write_text(text)
    print(text)
    return 0


class DiskCache(dict):
    """The buffer's condensation cache, also written to ``folder`` as npz (no pickle) so later
    invocations reuse it. Values are ``{(task, class): StoredGroup}`` (images, soft labels, formation factor)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key.replace(':', '_')}.npz"

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and self._path(key).exists())

    def __getitem__(self, key: str) -> Any:
        if not super().__contains__(key):
            from condense.strategies.stored_group import StoredGroup

            with np.load(self._path(key), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            value = {}
            for k in arrays:
                if k.count("_") == 1:  # "task_class": the images; "task_class_soft" / "task_class_factor" beside them
                    soft = arrays.get(f"{k}_soft")
                    factor = int(arrays[f"{k}_factor"]) if f"{k}_factor" in arrays else 1
                    value[tuple(int(v) for v in k.split("_"))] = StoredGroup(
                        torch.from_numpy(arrays[k]), None if soft is None else torch.from_numpy(soft), factor)
            super().__setitem__(key, value)
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        arrays = {}
        for (t, c), group in value.items():
            arrays[f"{t}_{c}"] = group.images.numpy()
            arrays[f"{t}_{c}_factor"] = np.array(group.formation_factor)
            if group.soft_labels is not None:
                arrays[f"{t}_{c}_soft"] = group.soft_labels.numpy()
        np.savez(self._path(key), **arrays)


def _done(jsonl: Path) -> set[tuple[int, int, str]]:
    if not jsonl.exists():
        return set()
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    return {(r["seed"], r["memory"], r["name"]) for r in rows}


def build_table(jsonl: Path) -> str:
    rows: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[(r["memory"], r["name"])].append(r)
    out = []
    for (memory, name), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], -statistics.fmean(r["final_accuracy"] for r in kv[1]))):
        cond = [s for r in runs for s in r["condense_seconds"]]
        out.append([
            f"`{name}`", runs[0]["label"], memory, ",".join(str(r["seed"]) for r in runs),
            mean_std([r["final_accuracy"] for r in runs]), mean_std([r["forgetting"] for r in runs]),
            f"{statistics.fmean(r['seconds_per_experience'] for r in runs):.1f}",
            f"{statistics.fmean(cond):.1f}" if cond else "-",
            max(r["peak_rss_mib"] for r in runs), runs[0]["buffer_size"] * 28 * 28 * 4,
        ])
    return markdown_table(["config", "what", "memory", "seeds", "final acc % (mean ± std)", "forgetting %",
                           "wall s / exp", "condense s / exp", "peak RSS MiB", "buffer bytes (images)"], out)


if __name__ == "__main__":
    sys.exit(main())
