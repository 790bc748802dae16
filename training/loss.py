"""The training objective: cross-entropy over the real target tokens of a batch.

Training and validation share it. Only non-padding positions reach the output projection
(`Seq2Seq.forward(..., positions=...)`), so padding costs neither the largest matrix
multiply of a step nor the softmax; the mean is over those tokens, as with `ignore_index`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq import PAD_ID
from training.batching import Batch


def token_loss(
    model: nn.Module, batch: Batch, *, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of `model` (a `Seq2Seq`, or DDP around one) on `batch`'s target tokens."""
    real = batch.tgt_out != PAD_ID  # [B, T]
    logits = model(batch.src, batch.src_len, batch.tgt_in, real)  # [N, V]
    return F.cross_entropy(
        logits.float(), batch.tgt_out[real], reduction=reduction, label_smoothing=label_smoothing
    )
