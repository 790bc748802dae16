// The translation page: POST the text box to /translate and show the answer or its reason.
"use strict";

const $ = (id) => document.getElementById(id);

async function showModel() {
  try {
    const response = await fetch("/model");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const model = await response.json();
    const bleu = model.metadata && model.metadata.best_val_bleu !== undefined
      ? `, validation BLEU ${model.metadata.best_val_bleu}` : "";
    $("model-info").textContent =
      `Model ${model.id}: ${model.src_lang || "?"} → ${model.tgt_lang || "?"}, ` +
      `${model.parameters.toLocaleString()} parameters on ${model.device}${bleu}`;
  } catch (error) {
    $("model-info").textContent = `Model information unavailable (${error.message})`;
  }
}

function reasonOf(body, status) {
  if (body && typeof body.error === "string") return body.error;
  if (body && typeof body.detail === "string") return body.detail;
  return `HTTP ${status}`;
}

async function translate() {
  const lines = $("source").value.split("\n").filter((line) => line.trim() !== "");
  if (lines.length === 0) {
    setStatus("Type something to translate.", true);
    return;
  }
  const headers = { "content-type": "application/json" };
  if ($("api-key").value) headers["x-api-key"] = $("api-key").value;
  const beam = Number($("beam").value) || 1;
  const alternatives = Number($("alternatives").value) || 0;
  $("translate").disabled = true;
  setStatus("Translating…", false);
  try {
    const response = await fetch("/translate", {
      method: "POST", headers,
      body: JSON.stringify({ texts: lines, beam_size: beam, alternatives }),
    });
    const body = await response.json().catch(() => null);
    if (response.status === 401 || response.status === 403) $("key-label").hidden = false;
    if (!response.ok) throw new Error(reasonOf(body, response.status));
    $("result").textContent = body.translations.join("\n");
    showOthers(lines, body.alternatives || []);
    setStatus(`${lines.length} sentence(s) in ${body.time_ms} ms, beam ${body.beam_size}.`, false);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    $("translate").disabled = false;
  }
}

function showOthers(lines, alternatives) {
  const list = $("others");
  list.replaceChildren(...alternatives.map((others, index) => {
    const item = document.createElement("li");
    item.textContent = `${lines[index]} → ${others.join(" · ") || "(none)"}`;
    return item;
  }));
  $("others-box").hidden = alternatives.length === 0;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "info error" : "info";
}

$("translate").addEventListener("click", translate);
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translate();
});
showModel();
