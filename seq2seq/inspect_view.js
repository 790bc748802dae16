// Inside the model: heatmaps of one inspection (units x tokens, encoder and decoder), the value
// under the pointer, a unit's trace across the sentence, the top units for a property and the
// decoder's choices. `showInspection(root, data)` draws it all into `root`; data is
// {inspection, units, by, signal, model}, as `seq2seq inspect --out page.html` inlines it and
// the server's POST /inspect answers it. No network, no libraries.
"use strict";

function showInspection(root, DATA) {
  const I = DATA.inspection, SCALE = I.scale;
  const GATES = ["input", "forget", "output", "reset", "update"];  // LSTM and GRU gates, 0..1
  const COLORS = { input: "#1b9e77", forget: "#d95f02", output: "#7570b3", candidate: "#e7298a",
                   cell: "#222", hidden: "#66a61e", reset: "#d95f02", update: "#1b9e77" };
  const view = { signal: DATA.signal || "cell", layer: 0, side: null, unit: null };
  const CELL_W = 18, TOP = 80, LEFT = 34;
  root.innerHTML = `
    <p class="sentence"><b>Source</b> <span data-part="source"></span></p>
    <p class="sentence"><b>Translation</b> <span data-part="translation"></span></p>
    <p class="muted" data-part="about"></p>
    <div class="controls">
      <label>Signal <select data-part="signal"></select></label>
      <label>Layer <select data-part="layer"></select></label>
      <span class="muted">Hover a cell for its value; click a unit (a row) to plot it.</span>
    </div>
    <div class="maps">
      <div class="map"><h3>Encoder <span class="muted">(units × tokens, in reading order)</span></h3>
        <canvas data-part="encoder"></canvas></div>
      <div class="map"><h3>Decoder <span class="muted">(units × tokens read)</span></h3>
        <canvas data-part="decoder"></canvas></div>
    </div>
    <div class="panels">
      <div class="panel"><h3 data-part="units-title"></h3><table data-part="units"></table></div>
      <div class="panel"><h3 data-part="trace-title">Click a unit to plot its trace</h3>
        <svg data-part="trace" width="640" height="260"></svg><div class="legend" data-part="legend"></div></div>
      <div class="panel"><h3>Decoder choices</h3><table data-part="steps"></table></div>
    </div>
    <div class="tip" data-part="tip"></div>`;
  const $ = (name) => root.querySelector(`[data-part="${name}"]`);
  const unitCount = () => I.encoder.layers[0].hidden[0].length;
  const rowHeight = () => Math.max(2, Math.min(12, Math.floor(640 / unitCount())));
  const values = (side, layer, signal) => I[side].layers[layer][signal];

  function limitOf(signal, layer) {  // colour scale end: 1 for gates, else the 98th percentile of |value|
    if (GATES.includes(signal)) return 1;
    const magnitudes = [];
    for (const side of ["encoder", "decoder"])
      for (const row of values(side, layer, signal)) for (const v of row) magnitudes.push(Math.abs(v));
    magnitudes.sort((a, b) => a - b);
    return Math.max(magnitudes[Math.floor(0.98 * (magnitudes.length - 1))] / SCALE, 1e-6);
  }
  function color(value, signal, limit) {
    if (GATES.includes(signal)) {  // 0 white .. 1 dark violet
      const t = Math.min(1, Math.max(0, value));
      return `rgb(${255 - 170 * t},${255 - 215 * t},${255 - 90 * t})`;
    }
    const t = Math.max(-1, Math.min(1, value / limit));  // blue - white - red
    return t < 0 ? `rgb(${255 + 200 * t},${255 + 120 * t},255)` : `rgb(255,${255 - 200 * t},${255 - 200 * t})`;
  }
  function drawMap(side) {
    const canvas = $(side), grid = values(side, view.layer, view.signal), tokens = I[side].tokens;
    const rh = rowHeight(), units = unitCount(), limit = limitOf(view.signal, view.layer);
    canvas.width = LEFT + tokens.length * CELL_W + 4;
    canvas.height = TOP + units * rh + 4;
    const g = canvas.getContext("2d");
    g.font = "11px monospace";
    tokens.forEach((token, step) => {
      g.save(); g.translate(LEFT + step * CELL_W + CELL_W / 2 + 3, TOP - 4); g.rotate(-Math.PI / 3);
      g.fillStyle = "#222"; g.fillText(token, 0, 0); g.restore();
      grid[step].forEach((v, unit) => {
        g.fillStyle = color(v / SCALE, view.signal, limit);
        g.fillRect(LEFT + step * CELL_W, TOP + unit * rh, CELL_W, rh);
      });
    });
    g.fillStyle = "#666";
    for (let unit = 0; unit < units; unit += Math.ceil(40 / rh)) g.fillText(String(unit), 0, TOP + unit * rh + 9);
    if (view.unit !== null && view.side === side) {
      g.strokeStyle = "#000"; g.strokeRect(LEFT - 1, TOP + view.unit * rh - 1, tokens.length * CELL_W + 2, rh + 2);
    }
  }
  function cellAt(side, event) {
    const box = $(side).getBoundingClientRect();
    const step = Math.floor((event.clientX - box.left - LEFT) / CELL_W);
    const unit = Math.floor((event.clientY - box.top - TOP) / rowHeight());
    const ok = step >= 0 && step < I[side].tokens.length && unit >= 0 && unit < unitCount();
    return ok ? { step, unit } : null;
  }
  function hover(side, event) {
    const at = cellAt(side, event), tip = $("tip");
    if (!at) { tip.style.display = "none"; return; }
    const v = values(side, view.layer, view.signal)[at.step][at.unit] / SCALE;
    tip.textContent = `${side} step ${at.step} “${I[side].tokens[at.step]}” · layer ${view.layer} unit ${at.unit} · ${view.signal} = ${v.toFixed(2)}`;
    Object.assign(tip.style, { display: "block", left: `${event.clientX + 12}px`, top: `${event.clientY + 12}px` });
  }
  function selectUnit(side, layer, unit) {
    Object.assign(view, { side, layer, unit });
    $("layer").value = String(layer);
    root.querySelectorAll("tr.unit").forEach((row) =>
      row.classList.toggle("selected", row.dataset.key === `${side}/${layer}/${unit}`));
    drawAll(); drawTrace();
  }
  function drawTrace() {
    const svg = $("trace"), { side, layer, unit } = view;
    if (unit === null) return;
    const tokens = I[side].tokens, width = 640, height = 230, pad = 30;
    let limit = 1;
    for (const signal of I.signals)
      for (const row of values(side, layer, signal)) limit = Math.max(limit, Math.abs(row[unit]) / SCALE);
    const x = (step) => pad + (step * (width - 2 * pad)) / Math.max(1, tokens.length - 1);
    const y = (v) => height / 2 - (v / limit) * (height / 2 - pad / 2);
    let body = `<line x1="${pad}" x2="${width - pad}" y1="${y(0)}" y2="${y(0)}" stroke="#ccc"/>`;
    for (const signal of I.signals) {
      const points = values(side, layer, signal).map((row, step) => `${x(step)},${y(row[unit] / SCALE)}`);
      body += `<polyline fill="none" stroke="${COLORS[signal]}" stroke-width="1.6" points="${points.join(" ")}"/>`;
    }
    tokens.forEach((token, step) => {
      body += `<text x="${x(step)}" y="${height + 14}" font-size="10" text-anchor="middle" font-family="monospace">${escapeHtml(token)}</text>`;
    });
    body += `<text x="2" y="${y(limit) + 4}" font-size="10">${limit.toFixed(1)}</text><text x="2" y="${y(-limit)}" font-size="10">${(-limit).toFixed(1)}</text>`;
    svg.innerHTML = body;
    $("trace-title").textContent = `${side} layer ${layer} unit ${unit}, step by step`;
  }
  function escapeHtml(text) {
    return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function drawAll() { drawMap("encoder"); drawMap("decoder"); }
  function showUnits(units, by) {
    $("units-title").textContent = `Top units: ${DATA.signal || "cell"} against ${by} (Pearson r)`;
    $("units").innerHTML = "<tr><th>#</th><th class=token>side</th><th>layer</th><th>unit</th><th>r</th></tr>" +
      units.map((u, i) => `<tr class="unit" data-key="${u.side}/${u.layer}/${u.unit}"><td>${i + 1}</td>` +
        `<td class=token>${u.side}</td><td>${u.layer}</td><td>${u.unit}</td><td>${u.r.toFixed(3)}</td></tr>`).join("");
    root.querySelectorAll("tr.unit").forEach((row) => {
      const [side, layer, unit] = row.dataset.key.split("/");
      row.onclick = () => selectUnit(side, Number(layer), Number(unit));
    });
  }
  function showSteps() {
    $("steps").innerHTML = "<tr><th>step</th><th class=token>read</th><th class=token>chosen</th><th>p</th><th class=token>top next tokens</th></tr>" +
      I.decoder.steps.map((s, i) => `<tr><td>${i}</td><td class=token>${escapeHtml(I.decoder.tokens[i])}</td>` +
        `<td class=token>${escapeHtml(s.token)}</td><td>${s.probability.toFixed(3)}</td><td class=token>` +
        s.top.map((c) => `${escapeHtml(c.token)} ${c.probability.toFixed(2)}`).join(", ") + "</td></tr>").join("");
  }
  $("source").textContent = I.text;
  $("translation").textContent = I.translation;
  $("about").textContent = `${DATA.model} · beam size ${I.beam_size} · ` +
    (I.reverse_source ? "the encoder reads the source reversed" : "the encoder reads the source in order");
  $("signal").innerHTML = I.signals.map((s) => `<option>${s}</option>`).join("");
  $("signal").value = view.signal;
  $("layer").innerHTML = I.encoder.layers.map((_, i) => `<option value="${i}">${i}</option>`).join("");
  $("signal").onchange = (e) => { view.signal = e.target.value; drawAll(); };
  $("layer").onchange = (e) => { view.layer = Number(e.target.value); view.unit = null; drawAll(); };
  for (const side of ["encoder", "decoder"]) {
    $(side).onmousemove = (e) => hover(side, e);
    $(side).onmouseleave = () => { $("tip").style.display = "none"; };
    $(side).onclick = (e) => { const at = cellAt(side, e); if (at) selectUnit(side, view.layer, at.unit); };
  }
  $("legend").innerHTML = I.signals.map((s) => `<span><i style="background:${COLORS[s]}"></i>${s}</span>`).join("");
  showUnits(DATA.units, DATA.by);
  showSteps();
  drawAll();
  if (DATA.units.length) { const u = DATA.units[0]; selectUnit(u.side, u.layer, u.unit); }
}
