"""Multi-layer distribution matching (cafe) and improved distribution matching (idm)."""

from __future__ import annotations

import statistics

import pytest
import torch

from condense import condense, evaluate
from condense.errors import CondenseError, InsufficientSamplesError
from condense.layer_features import layer_features
from condense.models import build_model
from distill_protocol import EVAL, WIDTH, accuracies, digits, random_mean

FEW_STEPS = {"steps": 40, "batch_real": 32, "model_kwargs": WIDTH}


@pytest.mark.parametrize("name", ["convnet", "mlp", "resnet"])
def test_layer_features_end_with_the_embedding(name: str) -> None:
    torch.manual_seed(0)
    net = build_model(name, (1, 8, 8), 10, width=16)
    x = torch.randn(5, 1, 8, 8)
    feats = layer_features(net, x)
    assert len(feats) >= 2
    assert all(f.shape[0] == 5 and f.dim() == 2 for f in feats)
    assert torch.allclose(feats[-1], net.embed(x))


def test_cafe_beats_random_at_ipc1() -> None:
    accs = accuracies("cafe", **FEW_STEPS)
    assert statistics.fmean(accs) > random_mean() + 0.02, (accs, random_mean())


def test_idm_beats_random_at_ipc1() -> None:
    # Digits are 8x8: factor 2 would store 4x4 tiles, too coarse for digits, so the
    # accuracy check runs without partitioning (model sampling and the CE term stay on).
    accs = accuracies("idm", factor=1, **FEW_STEPS)
    assert statistics.fmean(accs) > random_mean() + 0.02, (accs, random_mean())


def test_idm_keeps_dm_memory_budget_and_trains_on_four_times_the_images() -> None:
    train, test = digits()
    syn = condense(train, method="idm", ipc=1, steps=2, batch_real=8, model_kwargs=WIDTH, show_progress=False)
    assert syn.images.shape == (10, 1, 8, 8)  # the memory of 10 plain images
    assert syn.formation_factor == 2
    assert syn.training_tensors()[0].shape == (40, 1, 8, 8)
    assert len(evaluate(syn, test, **{**EVAL, "epochs": 2}).accuracies) == 1


def test_idm_refuses_too_few_real_images_for_its_formation() -> None:
    x = torch.rand(12, 1, 8, 8)
    y = torch.arange(3).repeat(4)  # 4 images a class; ipc 2 x factor 2^2 needs 8
    with pytest.raises(InsufficientSamplesError, match="8 real images per class"):
        condense((x, y), method="idm", ipc=2, steps=1, show_progress=False)


def test_idm_refuses_a_factor_that_does_not_tile_the_image() -> None:
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(3).repeat(10)
    with pytest.raises(CondenseError, match="does not divide"):
        condense((x, y), method="idm", ipc=1, steps=1, factor=3, show_progress=False)


def test_idm_refuses_a_coreset_init_with_a_formation() -> None:
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(3).repeat(10)
    with pytest.raises(CondenseError, match="init='real' or 'noise'"):
        condense((x, y), method="idm", ipc=1, steps=1, init="herding", show_progress=False)
