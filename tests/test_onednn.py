"""`seq2seq.onednn.linear`: the output layer's fp32 products through oneDNN compute what
`F.linear` does, forward and backward, and the model trains the same either way."""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

import seq2seq.onednn
from seq2seq import ModelConfig, Seq2Seq
from seq2seq.onednn import linear, onednn_enabled, onednn_works, uses_onednn

needs_onednn = pytest.mark.skipif(not onednn_works(), reason="no oneDNN matmul in this torch")
CONFIG = ModelConfig(
    src_vocab_size=40, tgt_vocab_size=30, embedding_size=8, hidden_size=16, dropout=0.0
)


def gradients(
    function: object, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> list[torch.Tensor]:
    """The output and the gradients of x, weight and bias under a fixed upstream gradient."""
    leaves = [
        t.detach().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())
    ]
    out = function(*leaves)  # type: ignore[operator]
    out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    return [out.detach()] + [leaf.grad for leaf in leaves]  # type: ignore[misc]


@needs_onednn
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("transposed", [False, True])
def test_linear_matches_f_linear_forward_and_backward(with_bias: bool, transposed: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(37, 24)  # [N, in]
    x = x.t().contiguous().t() if transposed else x  # the same values in column-major order
    weight, bias = torch.randn(50, 24), torch.randn(50) if with_bias else None  # [out, in]
    ours = gradients(linear, x, weight, bias)
    reference = gradients(F.linear, x, weight, bias)
    for got, expected in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_only_2d_fp32_cpu_tensors_outside_autocast_go_through_onednn() -> None:
    x, weight = torch.ones(3, 4), torch.ones(5, 4)
    assert uses_onednn(x, weight)
    assert not uses_onednn(x.unsqueeze(0), weight)
    assert not uses_onednn(x.double(), weight.double())
    assert not uses_onednn(x.bfloat16(), weight.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_onednn(x, weight)
        assert linear(x, weight).dtype == torch.bfloat16  # autocast's own cast applies
    with onednn_enabled(False):
        assert not uses_onednn(x, weight)


def test_a_torch_without_a_working_onednn_matmul_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(*_: object) -> torch.Tensor:
        raise RuntimeError("no such operator")

    monkeypatch.setattr(seq2seq.onednn, "_product", missing)
    seq2seq.onednn.onednn_works.cache_clear()
    try:
        x, weight = torch.randn(3, 4), torch.randn(5, 4)
        assert not onednn_works()
        torch.testing.assert_close(linear(x, weight), F.linear(x, weight))
    finally:
        seq2seq.onednn.onednn_works.cache_clear()


def train_briefly(steps: int) -> tuple[list[float], Seq2Seq]:
    """A seeded model trained `steps` Adam steps on one fixed batch: losses and the model."""
    torch.manual_seed(0)
    model = Seq2Seq(CONFIG)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    src = torch.randint(4, 40, (6, 7))  # [B, S]
    tgt_in, tgt_out = torch.randint(4, 30, (6, 5)), torch.randint(4, 30, (6, 5))  # [B, T]
    positions = torch.ones(6, 5, dtype=torch.bool)  # [B, T]
    losses = []
    for _ in range(steps):
        logits = model(src, torch.full((6,), 7), tgt_in, positions)  # [N, V]
        loss = F.cross_entropy(logits, tgt_out[positions])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(loss.item())
    return losses, model


@needs_onednn
def test_the_model_trains_the_same_with_and_without_onednn() -> None:
    with onednn_enabled(True):
        losses, model = train_briefly(40)
    with onednn_enabled(False):
        reference_losses, reference = train_briefly(40)
    assert losses[-1] < 0.5 * losses[0]  # it learns the batch
    torch.testing.assert_close(losses, reference_losses, rtol=1e-4, atol=1e-5)
    for got, expected in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)


@needs_onednn
def test_training_and_decoding_project_through_onednn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    product = seq2seq.onednn._product

    def counted(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return product(x, weight, bias)

    monkeypatch.setattr(seq2seq.onednn, "_product", counted)
    model = Seq2Seq(CONFIG)
    real = torch.tensor([[True, True, False]])  # [B, T]
    model(
        torch.tensor([[5, 6]]), torch.tensor([2]), torch.tensor([[1, 7, 0]]), real
    ).sum().backward()
    assert calls == [(2, 16), (2, 30), (16, 2)]  # logits, then both gradients
    with torch.no_grad():
        model.decode_step(
            torch.tensor([1, 7]), model.encode(torch.tensor([[5], [6]]), torch.tensor([1, 1]))
        )
    assert calls[-1] == (2, 16)


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not torch.backends.mkldnn.is_available(),  # type: ignore[no-untyped-call]
    reason="oneDNN's matmul is only expected in x86-64 builds of torch with mkldnn",
)
def test_an_x86_torch_with_mkldnn_has_the_onednn_matmul() -> None:
    """Fails, instead of every test above skipping, if a torch upgrade drops or changes it."""
    assert onednn_works()
