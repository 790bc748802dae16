"""fp32 linear layers on the CPU through oneDNN, the library PyTorch's own LSTM kernels use.

PyTorch multiplies fp32 matrices on the CPU with MKL's sgemm, and on x86 CPUs that are not
Intel's MKL takes a generic code path. On an AMD EPYC (Zen 4) it ran the three products of a
training step's output layer at 140 to 160 GFLOP/s, where oneDNN's matmul ran the same fp32
products at 180 to 200 (`python -m bench.onednn`). `linear` computes `x @ weight.T + bias`
through oneDNN, forward and backward, wherever it can: 2-D fp32 tensors on the CPU outside
autocast, in a build of torch whose oneDNN matmul computes what `F.linear` does. Everywhere
else, and with `SEQ2SEQ_ONEDNN=0` in the environment, it is `F.linear`. Both are fp32
products; they add up in another order, so results agree to about 1e-6 of their size.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

_enabled = os.environ.get("SEQ2SEQ_ONEDNN", "1") != "0"


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x [N, in], weight [out, in], bias [out] -> [N, out], as `F.linear` (any shapes there)."""
    if not uses_onednn(x, weight):
        return F.linear(x, weight, bias)
    return _OneDnnLinear.apply(x, weight, bias)  # type: ignore[no-untyped-call,no-any-return]


def uses_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether `linear(x, weight)` runs through oneDNN."""
    return (
        _enabled
        and x.device.type == "cpu"
        and x.dim() == 2
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and onednn_works()
    )


@contextmanager
def onednn_enabled(enabled: bool) -> Iterator[None]:
    """Within the block, `linear` uses oneDNN where it can (True) or never (False)."""
    global _enabled
    before, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = before


@functools.cache
def onednn_works() -> bool:
    """This build of torch has oneDNN's matmul, and it computes what F.linear does."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    x = torch.linspace(-1, 1, 15).reshape(3, 5)  # no random numbers: seeded runs stay as they are
    weight, bias = torch.linspace(1, -1, 20).reshape(4, 5), torch.linspace(0, 1, 4)
    try:
        product = _product(x, weight, bias)  # [3, 4]
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.allclose(product, F.linear(x, weight, bias), atol=1e-6)


def _product(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """oneDNN's x [N, in] @ weight [out, in].T + bias: dense tensors in and out, any strides."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")  # type: ignore[no-any-return]


class _OneDnnLinear(torch.autograd.Function):
    """`F.linear` with every product, forward and backward, through oneDNN."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.with_bias = bias is not None
        return _product(x, weight, bias)  # [N, out]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        grad_x = _product(grad, weight.t()) if needs_x else None  # [N, in]
        # [out, in], made as its transpose: oneDNN reads grad.T in place faster than it reads
        # grad's columns as rows
        grad_weight = _product(x.t(), grad.t()).t() if needs_weight else None
        grad_bias = grad.sum(0) if ctx.with_bias and needs_bias else None  # [out]
        return grad_x, grad_weight, grad_bias
