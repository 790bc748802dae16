"""Inference precision: fp32 as trained, bf16 weights and activations, or int8 dynamic quantisation.

`Translator(..., precision=...)` calls `convert`; the checkpoint always stores fp32 weights,
so a precision is a property of a loaded model, never of a file.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Literal, TypeVar, get_args

import torch
from torch import nn

Precision = Literal["fp32", "bf16", "int8"]
"""fp32: as trained. bf16: weights and activations in bfloat16 (fp32 softmax in beam search).
int8: LSTM and Linear weights in int8, activations quantised per batch (CPU only)."""
PRECISIONS: tuple[str, ...] = get_args(Precision)
Model = TypeVar("Model", bound=nn.Module)


def check_precision(precision: str, device: torch.device) -> None:
    """Raise `ValueError` for an unknown precision or one the device cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision 'int8' runs on the CPU only, not on {device.type}")


@functools.cache
def cpu_bf16_autocast_works() -> bool:
    """Whether this CPU runs an LSTM under bf16 autocast (oneDNN needs AVX512-BF16 or AMX).

    Probed once with a one-unit LSTM: CPUs without bfloat16 instructions (e.g. AVX2-only
    ones) fail to build the oneDNN primitive, which training should report up front.
    """
    lstm = nn.LSTM(1, 1, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 1, 1))  # [B=1, T=1, E=1]
    except RuntimeError:
        return False
    return True


def convert(model: Model, precision: str, device: torch.device) -> Model:
    """`model` (already on `device`, eval mode) ready to run at `precision`.

    int8 works on a copy, since quantisation replaces modules; bf16 converts in place.
    """
    check_precision(precision, device)
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        return quantize_int8(model)
    return model


def quantize_int8(model: Model) -> Model:
    """A copy with int8 weights in every nn.LSTM, nn.GRU and nn.Linear (dynamic quantisation)."""
    with warnings.catch_warnings():  # torch.ao.quantization warns that it will move to torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(  # type: ignore[no-untyped-call]
            copy.deepcopy(model), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8
        )
    return quantized  # type: ignore[no-any-return]
