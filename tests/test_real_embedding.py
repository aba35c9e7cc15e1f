"""The fast real-batch forward computes the same embeddings as a plain forward."""

from __future__ import annotations

import pytest
import torch

from condense.methods.dm import DistributionMatching
from condense.models.convnet import ConvNet
from condense.real_embedding import RealEmbedder


@pytest.fixture()
def net_and_batch():
    torch.manual_seed(0)
    net = ConvNet(1, 4, (8, 8), width=8, depth=2)
    return net, torch.randn(37, 1, 8, 8)


def test_chunked_forward_equals_one_forward(net_and_batch):
    net, x = net_and_batch
    whole = RealEmbedder("cpu", amp=None, chunk=0).embed(net, x)
    chunked = RealEmbedder("cpu", amp=None, chunk=5).embed(net, x)  # 37 = 7 x 5 + 2: a ragged last chunk
    assert chunked.shape == whole.shape == (37, net.embed_dim)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def test_embeddings_carry_no_graph_even_when_weights_need_grad(net_and_batch):
    net, x = net_and_batch
    out = RealEmbedder("cpu", amp=None).embed(net, x)
    assert all(p.requires_grad for p in net.parameters())
    assert not out.requires_grad and out.grad_fn is None
    assert out.dtype == torch.float32


def test_bf16_stays_close_to_float32(net_and_batch):
    net, x = net_and_batch
    ref = RealEmbedder("cpu", amp=None).embed(net, x)
    low = RealEmbedder("cpu", amp="bf16").embed(net, x)
    assert low.dtype == torch.float32
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max()
    assert not torch.equal(low, ref)  # it really ran in bfloat16


def test_compiled_forward_matches_eager_across_fresh_networks(net_and_batch):
    net, x = net_and_batch
    embedder = RealEmbedder("cpu", amp=None, chunk=16, compile=True)
    for seed in (1, 2):  # a second, fresh network reuses the compiled function with its own weights
        torch.manual_seed(seed)
        fresh = ConvNet(1, 4, (8, 8), width=8, depth=2)
        torch.testing.assert_close(embedder.embed(fresh, x), RealEmbedder("cpu", amp=None).embed(fresh, x), rtol=1e-4, atol=1e-5)
    assert not embedder._compile_failed


def test_failed_compile_warns_and_falls_back_to_eager(net_and_batch, monkeypatch):
    net, x = net_and_batch

    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    import condense.real_embedding as module

    monkeypatch.setattr(module, "_COMPILED", {})
    embedder = RealEmbedder("cpu", amp=None, compile=True)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out = embedder.embed(net, x)
    torch.testing.assert_close(out, RealEmbedder("cpu", amp=None).embed(net, x))
    assert embedder._compile_failed


def test_empty_batch_is_refused(net_and_batch):
    net, _ = net_and_batch
    with pytest.raises(ValueError, match="empty batch"):
        RealEmbedder("cpu").embed(net, torch.zeros(0, 1, 8, 8))


def test_compile_real_auto_follows_the_number_of_steps():
    short, long = DistributionMatching(steps=20), DistributionMatching(steps=2000)
    assert not short._real_embedder().compile and long._real_embedder().compile
    assert DistributionMatching(steps=20, compile_real=True)._real_embedder().compile
    assert not DistributionMatching(steps=2000, compile_real=False)._real_embedder().compile
    assert "compile_real" in long.get_params()
