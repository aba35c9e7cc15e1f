"""The no-grad forward of the real batch: the hot path of DM, CAFE, IDM and KRR.

At IPC 10 with 256 real images per class a DM step pushes 2,560 images
through the network and only 100 synthetic ones, so this forward is most of
the step. Four things make it fast without changing what it computes:

- no autograd (nothing on the real side needs a gradient);
- bfloat16 autocast where the device runs it natively;
- on the CPU, chunks of a few dozen images, so each layer's activations stay
  in cache instead of streaming 600 MB tensors through memory;
- optionally ``torch.compile``, which fuses norm, ReLU and pooling. Each
  step's network is a fresh instance, so the compiled function takes the
  weights as inputs (``torch.func.functional_call`` on one template of the
  architecture) and compiles once per architecture, not once per step.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any, Callable

import torch
from torch import nn


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix work natively (not emulated)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


class _EmbedOf(nn.Module):
    """Wraps a model so that ``forward`` is its ``embed`` (what functional_call runs)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


# One compiled forward per architecture for the whole process: every compiled
# function shares one code object, and dynamo stops compiling a code object
# after a few recompilations, so embedders must not each bring their own.
_COMPILED: dict[tuple[Any, ...], Callable[..., torch.Tensor]] = {}


def _architecture_key(net: nn.Module) -> tuple[Any, ...]:
    shapes = tuple((name, tuple(t.shape), t.dtype) for name, t in [*net.named_parameters(), *net.named_buffers()])
    return (type(net), net.training, shapes)


class RealEmbedder:
    """``embed(net, x)``: float32 embeddings of ``x`` under ``net``, with no autograd.

    Args:
        device: where the networks live.
        amp: ``"bf16"``, ``"auto"`` (bf16 where native) or ``None`` (float32).
        chunk: images per forward on the CPU (``0``: one forward); ignored on GPUs.
        compile: fuse the forward with ``torch.compile``. If compiling fails
            (no C++ compiler, unsupported platform) it warns once and runs eagerly.
    """

    def __init__(self, device: str | torch.device = "cpu", amp: str | None = "auto", chunk: int = 64, compile: bool = False) -> None:
        self.device = torch.device(device)
        self.bf16 = amp == "bf16" or (amp == "auto" and native_bf16(self.device))
        self.chunk = chunk if self.device.type == "cpu" else 0
        self.compile = compile
        self._compile_failed = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """No-grad context, in bfloat16 autocast when enabled."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if self.bf16:
            stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16))
        return stack

    def embed(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``x`` (float32, detached), computed chunk by chunk."""
        if x.shape[0] == 0:
            raise ValueError("RealEmbedder.embed got an empty batch")
        forward = self._compiled_forward(net) if self.compile and not self._compile_failed else None
        chunks = x.split(self.chunk) if self.chunk > 0 else (x,)
        with self.autocast():
            if forward is not None:
                try:
                    weights = {f"net.{n}": t for n, t in [*net.named_parameters(), *net.named_buffers()]}
                    return torch.cat([forward(weights, c).float() for c in chunks])
                except Exception as err:  # compile errors surface at the first call
                    self._give_up_compiling(err)
            return torch.cat([net.embed(c).float() for c in chunks])

    def _compiled_forward(self, net: nn.Module) -> Callable[..., torch.Tensor] | None:
        key = (_architecture_key(net), self.device.type, self.bf16)
        if key not in _COMPILED:
            template = _EmbedOf(copy.deepcopy(net)).train(net.training)

            def run(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
                return torch.func.functional_call(template, weights, (x,))

            try:
                _COMPILED[key] = torch.compile(run, dynamic=False)
            except Exception as err:
                self._give_up_compiling(err)
                return None
        return _COMPILED[key]

    def _give_up_compiling(self, err: Exception) -> None:
        self._compile_failed = True
        warnings.warn(f"torch.compile of the real-data forward failed ({type(err).__name__}: {err}); running it eagerly", RuntimeWarning, stacklevel=3)
