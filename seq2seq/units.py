"""Unit search: which LSTM units track a property of the tokens, and which gates saturate.

`rank_units(inspections, "position")` ranks every unit of every layer, encoder and decoder, by
the |Pearson r| between its cell state (or another signal: `signal="hidden"`) and a property
of the tokens, over all the steps of all the given inspections (`Translator.inspect`
results); "which cell counts?" is `rank_units(inspections, "position")[0]`. Pool sentences of
different lengths: within one sentence, position and remaining are the same line reversed.
`saturated_units` ranks units by the share of steps at which a gate is nearly shut (< 0.1) or
wide open (> 0.9), the measure of Karpathy, Johnson and Fei-Fei (2015).

Properties are of the sequence as each side reads it: the encoder reads the source reversed
when the model reverses it, the decoder reads BOS and then its own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from seq2seq.introspect import Inspection, SideTrace

PROPERTIES = {
    "position": "steps read before this one: 0, 1, 2, ...",
    "remaining": "steps left after this one (on the decoder: target tokens still to write)",
    "inside": "1 while a bracket or quotation mark opened by this token or before is open",
    "token:PIECE": "1 at the steps that read PIECE (with or without its leading '▁')",
}
"""The properties units can be ranked by, and what each one is at a step."""
SIDES = ("encoder", "decoder")
OPENING = {"(": ")", "[": "]", "{": "}", "„": "“", "“": "”", "«": "»", "»": "«", "‚": "‘"}
"""Opening bracket or quotation mark -> its closing one (German „…“ and English “…” both)."""


@dataclass(frozen=True)
class UnitCorrelation:
    """How closely one unit's values follow a property: Pearson r over the pooled steps."""

    side: str
    layer: int
    unit: int
    r: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data, r rounded to 4 decimals."""
        return {**asdict(self), "r": round(self.r, 4)}


@dataclass(frozen=True)
class UnitSaturation:
    """The share of steps at which one unit's gate was below `low` or above `high`."""

    side: str
    layer: int
    unit: int
    low: float
    high: float

    @property
    def share(self) -> float:
        """Saturated either way."""
        return self.low + self.high

    def to_dict(self) -> dict[str, Any]:
        """Plain data, shares rounded to 4 decimals."""
        shares = {"low": round(self.low, 4), "high": round(self.high, 4)}
        return {**asdict(self), **shares, "share": round(self.share, 4)}


def check_property(by: str) -> None:
    """`ValueError` naming the valid properties unless `by` is one of them."""
    if by in PROPERTIES or (by.startswith("token:") and len(by) > len("token:")):
        return
    valid = ", ".join(PROPERTIES)
    raise ValueError(f"unknown property {by!r}; valid: {valid}")


def property_values(tokens: Sequence[str], by: str) -> Tensor:
    """The value of property `by` at every step of a sequence that read `tokens`: [T]."""
    check_property(by)
    steps = torch.arange(len(tokens), dtype=torch.float64)  # [T]
    if by == "position":
        return steps
    if by == "remaining":
        return len(tokens) - 1 - steps
    if by == "inside":
        return torch.tensor(_inside(tokens), dtype=torch.float64)
    piece = by[len("token:") :]
    return torch.tensor([token in (piece, f"▁{piece}") for token in tokens], dtype=torch.float64)


def _inside(tokens: Sequence[str]) -> list[bool]:
    """After each token, whether a bracket or quotation mark is open (a stack of closers;
    a straight '"' closes an open '"', else opens one)."""
    expected: list[str] = []
    inside = []
    for token in tokens:
        for char in token:
            if expected and char == expected[-1]:
                expected.pop()
            elif char in OPENING:
                expected.append(OPENING[char])
            elif char == '"':
                expected.append('"')
        inside.append(bool(expected))
    return inside


def rank_units(
    inspections: Inspection | Sequence[Inspection],
    by: str,
    *,
    signal: str = "cell",
    side: str = "both",
    top: int = 10,
) -> list[UnitCorrelation]:
    """The `top` units whose `signal` follows property `by` most closely (|r|), best first.

    A side on which the property never changes is left out (r is undefined there);
    `ValueError` when that leaves nothing, and for an unknown property, signal or side.
    """
    check_property(by)
    found: list[UnitCorrelation] = []
    for name, traces in _sides(inspections, side):
        target = torch.cat([property_values(trace.tokens, by) for trace in traces])  # [N]
        if bool((target == target[0]).all()):
            continue  # r is undefined on this side
        for layer in range(len(traces[0].layers)):
            values = _pooled(traces, layer, signal)  # [N, H]
            for unit, r in enumerate(pearson(values, target).tolist()):
                found.append(UnitCorrelation(name, layer, unit, r))
    if not found:
        raise ValueError(f"{by!r} is the same at every step read: nothing to correlate")
    return sorted(found, key=lambda item: -abs(item.r))[:top]


def saturated_units(
    inspections: Inspection | Sequence[Inspection],
    *,
    gate: str = "forget",
    side: str = "both",
    top: int = 10,
    low: float = 0.1,
    high: float = 0.9,
) -> list[UnitSaturation]:
    """The `top` units whose `gate` is most often below `low` or above `high`, most first."""
    found: list[UnitSaturation] = []
    for name, traces in _sides(inspections, side):
        for layer in range(len(traces[0].layers)):
            values = _pooled(traces, layer, gate)  # [N, H]
            shut = (values < low).double().mean(dim=0).tolist()  # [H]
            wide = (values > high).double().mean(dim=0).tolist()  # [H]
            found += [
                UnitSaturation(name, layer, unit, *shares)
                for unit, shares in enumerate(zip(shut, wide, strict=True))
            ]
    return sorted(found, key=lambda item: -item.share)[:top]


def pearson(values: Tensor, target: Tensor) -> Tensor:
    """Pearson r of each column of values [N, H] with target [N]: [H] (0 for a flat column)."""
    x = values.double() - values.double().mean(dim=0)  # [N, H]
    y = target.double() - target.double().mean()  # [N]
    scale = (x.square().sum(dim=0) * y.square().sum()).sqrt()  # [H]
    r = (x * y.unsqueeze(1)).sum(dim=0) / scale  # [H]
    return torch.where(scale > 0, r, torch.zeros_like(r)).clamp(-1.0, 1.0)


def _sides(
    inspections: Inspection | Sequence[Inspection], side: str
) -> list[tuple[str, list[SideTrace]]]:
    """(side name, its trace in every inspection) for `side`: encoder, decoder or both."""
    if side not in (*SIDES, "both"):
        raise ValueError(f"side must be encoder, decoder or both, got {side!r}")
    pool = [inspections] if isinstance(inspections, Inspection) else list(inspections)
    if not pool:
        raise ValueError("no inspections to search")
    names = SIDES if side == "both" else (side,)
    return [(name, [getattr(item, name) for item in pool]) for name in names]


def _pooled(traces: Sequence[SideTrace], layer: int, signal: str) -> Tensor:
    """Signal `signal` of `layer` over the steps of all traces, one after another: [N, H]."""
    return torch.cat([trace.layers[layer][signal] for trace in traces])
