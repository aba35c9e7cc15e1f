"""train_classifier's micro-batches give the whole batch's update; accuracy is batch-size free."""

from __future__ import annotations

import pytest
import torch

from condense.augment import SiameseAugment, default_strategy
from condense.models import build_model
from condense.training import TrainConfig, accuracy, micro_batch_size, train_classifier


def _data(n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.arange(n) % 10


def _trained(micro: int | str, soft: torch.Tensor | None = None, seen: list[int] | None = None) -> torch.nn.Module:
    """A small ConvNet trained 3 epochs; ``seen`` collects the size of every training forward."""
    x, y = _data()
    torch.manual_seed(0)
    net = build_model("convnet", (1, 8, 8), 10, width=8, depth=2)
    if seen is not None:
        net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    config = TrainConfig(epochs=3, batch_size=25, lr=0.05, micro_batch=micro)
    augment = SiameseAugment(default_strategy(1))
    return train_classifier(net, x, y, config, soft, augment, "cpu", torch.Generator().manual_seed(1))


@pytest.mark.parametrize("soft", [False, True])
def test_micro_batches_give_the_same_training_as_whole_batches(soft: bool) -> None:
    logits = torch.randn(60, 10, generator=torch.Generator().manual_seed(2)) if soft else None
    whole_sizes: list[int] = []
    chunked_sizes: list[int] = []
    whole, chunked = _trained(25, logits, whole_sizes), _trained(7, logits, chunked_sizes)
    # the chunked run really ran in pieces of at most 7 (60 images: batches of 25, 25, 10)
    assert max(chunked_sizes) == 7 and max(whole_sizes) == 25
    assert sum(chunked_sizes) == sum(whole_sizes) == 3 * 60
    for (name, a), (_, b) in zip(whole.state_dict().items(), chunked.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), name
    # and training did move the weights away from the same initialisation
    torch.manual_seed(0)
    start = build_model("convnet", (1, 8, 8), 10, width=8, depth=2)
    assert not torch.allclose(whole.classifier.weight, start.classifier.weight, atol=1e-3)


def test_batchnorm_models_always_take_the_whole_batch() -> None:
    bn = build_model("convnet", (1, 8, 8), 10, width=8, depth=2, norm="batchnorm")
    inorm = build_model("convnet", (1, 8, 8), 10, width=8, depth=2)
    config = TrainConfig(batch_size=25)
    assert micro_batch_size(bn, config, "cpu") == 25
    assert micro_batch_size(inorm, config, "cpu") == 16
    with pytest.raises(ValueError, match="BatchNorm"):
        micro_batch_size(bn, TrainConfig(batch_size=25, micro_batch=5), "cpu")
    with pytest.raises(ValueError, match="micro_batch"):
        micro_batch_size(inorm, TrainConfig(micro_batch=0), "cpu")


def test_accuracy_does_not_depend_on_the_test_batch_size() -> None:
    net = _trained("auto")
    x, y = _data(n=90, seed=3)
    values = {accuracy(net, x, y, "cpu", batch_size=b) for b in (1, 16, 1024)}
    assert len(values) == 1 and values == {accuracy(net, x, y, "cpu")}
