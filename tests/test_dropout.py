"""The model's dropout does what nn.Dropout does: same keep rate, scaling and gradient."""

from __future__ import annotations

import pytest
import torch

from seq2seq.dropout import Dropout, dropout


def test_units_are_kept_at_one_minus_p_and_scaled() -> None:
    torch.manual_seed(0)
    inputs = torch.ones(64, 32, 256)  # [B, T, H]
    outputs = dropout(inputs, 0.25)
    kept = outputs != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert torch.allclose(outputs[kept], torch.full_like(outputs[kept], 1 / 0.75))


def test_gradient_is_the_mask_that_was_applied() -> None:
    torch.manual_seed(1)
    inputs = torch.randn(8, 5, 16, requires_grad=True)  # [B, T, H]
    outputs = dropout(inputs, 0.5)
    outputs.sum().backward()
    assert inputs.grad is not None
    assert torch.equal(inputs.grad, (outputs != 0).float() * 2.0)


def test_eval_mode_and_zero_rate_are_the_identity() -> None:
    inputs = torch.randn(4, 3)
    module = Dropout(0.3).eval()
    assert module(inputs) is inputs
    assert dropout(inputs, 0.0) is inputs


def test_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_bfloat16_inputs_keep_their_dtype() -> None:
    inputs = torch.ones(10, 10, dtype=torch.bfloat16)
    assert dropout(inputs, 0.1).dtype == torch.bfloat16
