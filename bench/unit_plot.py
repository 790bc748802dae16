"""The figures of `bench.neurons`: chosen units of one inspection, step by step.

The encoder's final (h, c) is the decoder's initial state, so unit k of the encoder and unit
k of the decoder are the same slot of one state vector: a unit is drawn across the encoder's
steps and then the decoder's, with a line where the state crosses over.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seq2seq.introspect import Inspection

GATES = ("input", "forget", "output", "candidate")


def trace(inspection: Inspection, unit: int, signal: str, *, layer: int = 0) -> list[float]:
    """`signal` of `unit` at every encoder step, then at every decoder step."""
    sides = (inspection.encoder, inspection.decoder)
    return [float(v) for side in sides for v in side.layers[layer][signal][:, unit]]


def plot_units(
    path: Path, inspection: Inspection, units: Sequence[int], *, title: str, labels: bool = True
) -> None:
    """Top: the cell (solid) and hidden state (dotted) of `units`; bottom: the first unit's
    gates and candidate. x: encoder steps, then decoder steps; small PNG for docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = [*inspection.encoder.tokens, *inspection.decoder.tokens]
    crossing = len(inspection.encoder.tokens) - 0.5
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(7.5, 4.8), sharex=True, height_ratios=[3, 2], layout="constrained"
    )
    for unit in units:
        (line,) = top.plot(trace(inspection, unit, "cell"), marker=".", label=f"unit {unit} cell")
        top.plot(trace(inspection, unit, "hidden"), ":", color=line.get_color(), label="hidden")
    for gate in GATES:
        bottom.plot(trace(inspection, units[0], gate), label=gate, linewidth=1.2)
    for axis in (top, bottom):
        axis.axvline(crossing, color="grey", linewidth=0.8)
        axis.legend(fontsize=7, loc="best", ncol=2)
    top.set_title(title, fontsize=10)
    top.set_ylabel("value")
    bottom.set_ylabel(f"unit {units[0]}")
    if labels:
        bottom.set_xticks(range(len(tokens)), tokens, rotation=70, fontsize=6)
    bottom.set_xlabel("encoder steps | decoder steps")
    figure.savefig(path, dpi=80)
    plt.close(figure)
