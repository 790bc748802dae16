"""The training objective: projecting only the real target tokens changes nothing but speed."""

import pytest
import torch
from conftest import make_batch

from seq2seq import PAD_ID, ModelConfig, Seq2Seq
from training.batching import Batch
from training.loss import token_loss


def padded_loss(model: Seq2Seq, batch: Batch, label_smoothing: float) -> torch.Tensor:
    """The textbook loss: logits at every position, padding ignored by the cross-entropy."""
    logits = model(batch.src, batch.src_len, batch.tgt_in)  # [B, T, V]
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1),
        batch.tgt_out.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_token_loss_and_its_gradients_equal_the_padded_loss(label_smoothing: float) -> None:
    torch.manual_seed(2)
    model = Seq2Seq(ModelConfig(20, 20, embedding_size=8, hidden_size=12, dropout=0.0))
    batch = Batch(*make_batch([[5, 6, 7], [8], [9, 10]], [[4, 5, 6, 7], [7], [11, 12]]))
    assert int((batch.tgt_out == PAD_ID).sum()) > 0  # the case that matters: padding present
    losses, grads = [], []
    for loss_fn in (padded_loss, lambda m, b, s: token_loss(m, b, label_smoothing=s)):
        model.zero_grad()
        loss = loss_fn(model, batch, label_smoothing)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(losses[1], losses[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_summed_loss_counts_every_real_token() -> None:
    torch.manual_seed(3)
    model = Seq2Seq(ModelConfig(20, 20, embedding_size=8, hidden_size=12, dropout=0.0))
    batch = Batch(*make_batch([[5, 6], [8]], [[4, 5, 6], [7]]))
    total = token_loss(model, batch, reduction="sum")
    torch.testing.assert_close(total / batch.num_tokens, token_loss(model, batch))
