"""The small runs whose results are pinned under ``tests/fixtures/loop/``.

Every registry method, a few steps on scikit-learn's digits at seed 0 with a
tiny network, so a change to the loop that changes any number shows up as a
failing comparison. Regenerate (only for an intended numeric change, listed in
the commit message) with ``python tests/loop_fixtures.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "loop"
NET = {"width": 8, "depth": 2}
STEPS = 3

# Settings that exercise each method's own machinery in three steps.
EXTRA: dict[str, dict[str, Any]] = {
    "dc": {"outer_loop": 2, "inner_loop": 1},
    "dsa": {"outer_loop": 2, "inner_loop": 1},
    "idm": {"refresh_every": 2, "queue_size": 2},
    "krr": {"learn_labels": True},
    "mtt": {"soft_labels": True, "num_experts": 1, "expert_train_epochs": 2, "expert_batch_size": 64,
            "max_start_epoch": 1, "expert_epochs": 1, "syn_steps": 2},
    "herding": {"features": "random"},
    "kcenter": {"features": "random"},
}


def fixture_params(name: str, cls: type, tmp: Path) -> dict[str, Any]:
    """Constructor arguments of the pinned run of ``name``."""
    from condense.methods.base import Distiller

    kw: dict[str, Any] = {"ipc": 2, "seed": 0, "show_progress": False, **EXTRA.get(name, {})}
    if issubclass(cls, Distiller):
        kw.update(steps=STEPS, model_kwargs=NET, amp=None)
        if name == "mtt":
            kw["expert_path"] = str(tmp / "experts.npz")
        else:
            kw["batch_real"] = 16
    return kw


def run(name: str, tmp: Path):
    """The pinned run of ``name`` on digits: its :class:`SyntheticSet`."""
    from condense.data import load_dataset
    from condense.registry import get_method

    cls = get_method(name).cls
    train, _ = load_dataset("digits")
    return cls(**fixture_params(name, cls, tmp)).fit(train).synthetic_set_


def main() -> None:
    import tempfile

    import torch

    from condense.registry import available_methods

    torch.set_num_threads(1)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for info in available_methods():
        with tempfile.TemporaryDirectory() as tmp:
            syn = run(info.name, Path(tmp))
        syn.save(FIXTURES / f"{info.name}.npz")
        print(info.name, tuple(syn.images.shape), float(syn.images.sum()))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
