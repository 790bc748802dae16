"""Reports of one inspection: a self-contained HTML page, or PNG heatmaps of units × tokens.

The page is `inspect_page.html` with the inspection inlined as JSON and the viewer
(`inspect_view.js` and `inspect_view.css`, which the server's web page uses too) inlined as
well: styles, script and data are all in the one file, the heatmaps are drawn on canvases, and
nothing is fetched from the network, so it opens offline. The PNG shows one signal (the cell
state by default) of every layer, encoder and decoder side by side.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seq2seq.introspect import Inspection, SideTrace
from seq2seq.units import UnitCorrelation

PAGE = Path(__file__).with_name("inspect_page.html")
VIEW_SCRIPT = Path(__file__).with_name("inspect_view.js")
VIEW_STYLE = Path(__file__).with_name("inspect_view.css")
GATES = ("input", "forget", "output", "reset", "update")
"""Signals between 0 and 1 (LSTM and GRU gates), drawn on a sequential colour scale; the others
diverge around 0."""


def page_html(
    inspection: Inspection,
    *,
    units: Sequence[UnitCorrelation],
    by: str,
    signal: str = "cell",
    model: str = "",
    decimals: int = 2,
) -> str:
    """The page for `inspection`, its top `units` for property `by`, heatmaps of `signal`."""
    data = {
        "inspection": inspection.to_dict(decimals=decimals),
        "units": [unit.to_dict() for unit in units],
        "by": by,
        "signal": signal,
        "model": model,
    }
    # "<" escaped: no "</script>" or "<!--" in the text can end or bend the script element
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    fields = {
        "TITLE": html.escape(inspection.text),
        "DATA": payload,
        "CSS": VIEW_STYLE.read_text(encoding="utf-8"),
        "SCRIPT": VIEW_SCRIPT.read_text(encoding="utf-8"),
    }
    template = PAGE.read_text(encoding="utf-8")
    return re.sub(r"__(TITLE|DATA|CSS|SCRIPT)__", lambda match: fields[match.group(1)], template)


def write_html(inspection: Inspection, path: str | os.PathLike[str], **options: Any) -> None:
    """Write `page_html(inspection, **options)` to `path`."""
    Path(path).write_text(page_html(inspection, **options), encoding="utf-8")


def write_png(
    inspection: Inspection, path: str | os.PathLike[str], *, signal: str = "cell"
) -> None:
    """Heatmaps of `signal` (units × tokens), encoder left and decoder right, a row per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = (("encoder", inspection.encoder), ("decoder", inspection.decoder))
    layers = len(inspection.encoder.layers)
    steps = [len(side.tokens) for _, side in sides]
    figure, axes = plt.subplots(
        layers,
        2,
        figsize=(3 + 0.28 * sum(steps), 1.5 + 4.5 * layers),
        squeeze=False,
        gridspec_kw={"width_ratios": steps},
        layout="constrained",
    )
    for layer in range(layers):
        limit = _limit(inspection, layer, signal)
        for column, (name, side) in enumerate(sides):
            image = _heatmap(axes[layer][column], side, layer, signal, limit)
            axes[layer][column].set_title(f"{name} layer {layer}: {signal}", fontsize=10)
        figure.colorbar(image, ax=axes[layer].tolist(), shrink=0.8)
    figure.suptitle(f"{inspection.text}  →  {inspection.translation}", fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _limit(inspection: Inspection, layer: int, signal: str) -> float:
    """The colour scale's end: 1 for gates, else the 98th percentile of the layer's |values|
    (a few large cells would otherwise wash the others out)."""
    if signal in GATES:
        return 1.0
    sides = (inspection.encoder, inspection.decoder)
    values = torch.cat([side.layers[layer][signal].flatten() for side in sides])  # [N]
    return float(values.abs().quantile(0.98)) or 1.0


def _heatmap(axis: Any, side: SideTrace, layer: int, signal: str, limit: float) -> Any:
    values = side.layers[layer][signal].T.numpy()  # [H, T]
    low, cmap = (0.0, "Purples") if signal in GATES else (-limit, "RdBu_r")
    image = axis.imshow(
        values, aspect="auto", cmap=cmap, vmin=low, vmax=limit, interpolation="nearest"
    )
    axis.set_xticks(range(len(side.tokens)), side.tokens, rotation=70, fontsize=7)
    axis.set_ylabel("unit")
    return image
