// The translation page: languages from /languages, POST /translate (source detected when
// asked), the answer or its reason, and POST /inspect drawn by showInspection (inspect_view.js).
"use strict";

const $ = (id) => document.getElementById(id);
let languages = [];  // LibreTranslate's list: {code, name, targets}

async function loadLanguages() {
  try {
    const response = await fetch("/languages");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    languages = await response.json();
    const sources = languages.filter((language) => language.targets.length);
    const detect = sources.length > 1 ? [`<option value="auto">Detect language</option>`] : [];
    $("from").innerHTML = detect.concat(sources.map(option)).join("");
    showTargets();
    $("model-info").textContent = `${sources.length} source language(s); pairs without a ` +
      "model of their own go through English.";
  } catch (error) {
    $("model-info").textContent = `Languages unavailable (${error.message})`;
  }
}

function option(language) {
  return `<option value="${language.code}">${language.name}</option>`;
}

function showTargets() {
  const chosen = $("to").value, source = $("from").value;
  const codes = source === "auto"
    ? [...new Set(languages.flatMap((language) => language.targets))]
    : languages.find((language) => language.code === source).targets;
  $("to").innerHTML = languages.filter((language) => codes.includes(language.code)).map(option).join("");
  if (codes.includes(chosen)) $("to").value = chosen;
}

function swap() {
  const source = $("from").value, target = $("to").value;
  if (source === "auto" || ![...$("from").options].some((o) => o.value === target)) return;
  $("from").value = target;
  showTargets();
  $("to").value = source;
}

function nameOf(code) {
  const found = languages.find((language) => language.code === code);
  return found ? found.name : code;
}

function reasonOf(body, status) {
  if (body && typeof body.error === "string") return body.error;
  return `HTTP ${status}`;
}

async function post(path, payload) {
  const headers = { "content-type": "application/json" };
  if ($("api-key").value) headers["x-api-key"] = $("api-key").value;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(payload) });
  const body = await response.json().catch(() => null);
  if (response.status === 401 || response.status === 403) $("key-label").hidden = false;
  if (!response.ok) throw new Error(reasonOf(body, response.status));
  return body;
}

function lines() {
  return $("source").value.split("\n").filter((line) => line.trim() !== "");
}

async function translate() {
  const texts = lines();
  if (texts.length === 0) return setStatus("Type something to translate.", true);
  busy(true, "Translating…");
  try {
    const body = await post("/translate", {
      texts, source: $("from").value, target: $("to").value,
      beam_size: Number($("beam").value) || 1, alternatives: Number($("alternatives").value) || 0,
    });
    $("result").textContent = body.translations.join("\n");
    showOthers(texts, body.alternatives || []);
    const found = body.detectedLanguage ? body.detectedLanguage[0] : null;
    const detected = found ? `detected ${nameOf(found.language)} (${found.confidence}%), ` : "";
    const pivot = body.pivot ? `through ${nameOf(body.pivot)}, ` : "";
    setStatus(`${texts.length} line(s): ${detected}${pivot}${body.time_ms} ms, beam ${body.beam_size}.`, false);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    busy(false);
  }
}

async function inspect() {
  const text = lines()[0];
  if (!text) return setStatus("Type a sentence to look inside the model with.", true);
  busy(true, "Reading the model…");
  try {
    const auto = $("from").value === "auto";
    const source = auto ? (await post("/detect", { q: text }))[0].language : $("from").value;
    const data = await post("/inspect", { text, source, target: $("to").value, by: $("by").value });
    $("inside-box").hidden = false;
    showInspection($("inside"), data);
    setStatus(`Inside ${data.model}: ${data.inspection.encoder.tokens.length} source tokens.`, false);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    busy(false);
  }
}

function showOthers(texts, alternatives) {
  $("others").replaceChildren(...alternatives.map((others, index) => {
    const item = document.createElement("li");
    item.textContent = `${texts[index]} → ${others.join(" · ") || "(none)"}`;
    return item;
  }));
  $("others-box").hidden = alternatives.length === 0;
}

function busy(on, text) {
  $("translate").disabled = $("inspect").disabled = on;
  if (text) setStatus(text, false);
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "info error" : "info";
}

$("translate").addEventListener("click", translate);
$("inspect").addEventListener("click", inspect);
$("by").addEventListener("change", inspect);
$("from").addEventListener("change", showTargets);
$("swap").addEventListener("click", swap);
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translate();
});
loadLanguages();
