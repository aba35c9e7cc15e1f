"""Every registry method in both integrations (no hand-typed method list): its set fills a
CondensedBuffer within the budget and travels as a federated payload the server accepts,
multi-formation images and learned soft labels included."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("avalanche")
pytest.importorskip("flwr")

from flwr.app import RecordDict  # noqa: E402

from condense.api import make_condenser  # noqa: E402
from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY, encode_synthetic_set  # noqa: E402
from condense.federated.validation import PayloadLimits, validate_reply  # noqa: E402
from condense.normalization import Normalization  # noqa: E402
from condense.registry import available_methods  # noqa: E402
from condense.strategies import CondensedBuffer  # noqa: E402
from condense.strategies.experience_data import ExperienceTensors  # noqa: E402

# Small settings, keyed by hyperparameter name (a method gets those it takes).
SMALL = {"steps": 2, "batch_real": 8, "model_kwargs": {"width": 8}, "net_batch": 32, "syn_steps": 2, "num_experts": 1,
         "expert_train_epochs": 2, "expert_epochs": 1, "max_start_epoch": 1, "inner_steps": 2, "features": "random"}
# Learned soft labels where a method offers them (so their path is exercised too).
SOFT = {"learn_labels": True, "soft_labels": True}
METHODS = [m.name for m in available_methods()]
CLASSES = [1, 7]


def small_kwargs(name: str, soft: bool = False) -> dict:
    taken = set(next(m for m in available_methods() if m.name == name).cls._param_names())
    extra = SOFT if soft else {}
    return {k: v for k, v in {**SMALL, **extra}.items() if k in taken}


@pytest.fixture(scope="module")
def two_classes(digits):
    train, _ = digits
    mask = torch.isin(train.y, torch.tensor(CLASSES))
    return train.x[mask], train.y[mask]


@pytest.mark.parametrize("soft", [False, True], ids=["defaults", "soft-labels-where-offered"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_fills_a_buffer_and_travels_as_a_payload(method: str, soft: bool, two_classes, tmp_path) -> None:
    kwargs = small_kwargs(method, soft)
    if soft and not set(SOFT) & set(kwargs):
        pytest.skip(f"{method} learns no soft labels")
    x, y = two_classes
    # --- continual learning: a buffer of 4 images of the input's size
    buf = CondensedBuffer(4, method=method, method_kwargs=kwargs, resize_method="random",
                          show_progress=False)
    buf.update_from_tensors(ExperienceTensors(x, y, torch.zeros_like(y)))
    assert len(buf) == 4 and buf.nbytes <= 4 * x[0].numel() * 4
    rx, ry, _, targets = buf.replay_tensors()
    factors = {buf.stored_group(g).formation_factor for g in buf.groups}
    assert rx.shape[0] == sum(len(buf.stored_group(g)) * buf.stored_group(g).formation_factor**2 for g in buf.groups)
    assert torch.isfinite(rx).all() and set(ry.tolist()) == set(CLASSES)
    if targets is not None:
        assert targets.shape[0] == rx.shape[0] and torch.allclose(targets.sum(1), torch.ones(rx.shape[0]))
    back = CondensedBuffer.load(buf.save(tmp_path / "buf.npz"))
    assert torch.equal(back.replay_tensors()[0], rx)

    # --- federated learning: the same method's set as a client's payload
    syn = make_condenser(method, ipc=2, seed=0, show_progress=False, **kwargs).condense((x, y), 10)
    arrays, config = encode_synthetic_set(syn, "float32")
    decoded = validate_reply(RecordDict({ARRAYS_KEY: arrays, CONFIG_KEY: config}), PayloadLimits.for_run((1, 8, 8), 10, 2))
    server_set = decoded.to_synthetic_set(Normalization((0.0,), (1.0,)))
    assert server_set.formation_factor == syn.formation_factor and syn.formation_factor in factors
    assert (server_set.soft_labels is None) == (syn.soft_labels is None)
    sx, sy, _ = server_set.training_tensors()
    ox, oy, _ = syn.training_tensors()
    assert torch.equal(sy, oy) and sx.shape == ox.shape  # expanded alike on both sides
    assert torch.allclose(server_set.images, syn.denormalized_images(), atol=1e-5)  # pixels, server norm (0, 1)
    if soft:
        assert syn.soft_labels is not None and targets is not None  # kept by the buffer and the payload alike

