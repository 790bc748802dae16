"""The textbook decoder every speed-up is measured against: one sentence at a time.

It is the loop most tutorials write: encode one sentence, then feed the argmax back through
the decoder's `nn.LSTM` one step at a time until END, no batching. It uses the same weights
and the same length limit as `Translator`, so its output is the greedy output.
"""

from __future__ import annotations

import torch

from seq2seq import BOS_ID, EOS_ID, Seq2Seq


@torch.no_grad()
def translate_one(model: Seq2Seq, src_ids: list[int], *, max_len: int) -> list[int]:
    """Greedy target ids (without BOS/EOS) of one tokenized source sentence."""
    src = torch.tensor([src_ids])  # [1, S]
    state = model.encoder(src, torch.tensor([len(src_ids)]))  # [L, 1, H] each
    token, output = BOS_ID, []
    for _ in range(max_len):
        logits, state = model.decoder(torch.tensor([[token]]), state)  # [1, 1, V]
        token = int(logits.argmax(dim=-1).item())
        if token == EOS_ID:
            break
        output.append(token)
    return output


def translate_all(model: Seq2Seq, sources: list[list[int]], max_lens: list[int]) -> list[list[int]]:
    """`translate_one` over every sentence, in order."""
    return [
        translate_one(model, ids, max_len=limit)
        for ids, limit in zip(sources, max_lens, strict=True)
    ]
