// nfgan serve: the page's few lines of logic. Sends the chosen photos to POST /api/normalize and shows the
// answer; no framework, no build step.
"use strict";

const state = { files: [], sent: [], limits: null, webcam: null, shots: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const png = (b64) => "data:image/png;base64," + b64;
const mb = (bytes) => (bytes / 1048576).toFixed(1) + " MB";
const size = (bytes) => (bytes < 1048576 ? Math.max(1, Math.round(bytes / 1024)) + " KB" : mb(bytes));
const poseText = (pose) => pose.replace("_3quarter", " three-quarter").replace("_profile", " profile");
const fixed = (x, digits = 3) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits));
const percent = (p) => Math.round(100 * p) + " %";
const stem = (name) => (name.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "photo");

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

function setStatus(text) { $("status").textContent = text || ""; }

function limitsProblem(files) {
  if (!state.limits) return null;
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (files.length > state.limits.max_images || total > state.limits.max_request_bytes) {
    return `Too much at once: ${files.length} photo(s), ${mb(total)}; send ${state.limits.text}.`;
  }
  return null;
}

function renderChosen() {
  const list = $("chosen");
  list.replaceChildren(...state.files.map((file, i) => el("li", {},
    `${file.name} (${size(file.size)})`,
    el("button", { type: "button", title: "remove", "aria-label": `remove ${file.name}`,
      onclick: () => { state.files.splice(i, 1); renderChosen(); } }, "×"))));
  $("go").disabled = state.files.length === 0;
  showError(limitsProblem(state.files));
}

function addFiles(files) {
  for (const file of files) state.files.push(file);
  renderChosen();
}

async function loadModels() {
  try {
    const response = await fetch("/api/models");
    const info = await response.json();
    state.limits = info.limits;
    $("limits").textContent = `Per request: ${info.limits.text}. Faces are judged by ${info.evaluators.identity} ` +
      `(identity) and ${info.evaluators.expression} (expression); faces are found by the ${info.detector} detector.`;
    $("model").replaceChildren(...info.models.map((m) => el("option",
      { value: m.key, selected: m.key === info.default, title: m.file }, m.label)));
  } catch (e) {
    showError("Cannot reach the nfgan server: " + e.message);
  }
}

async function send(files, largest) {
  const form = new FormData();
  for (const file of files) form.append("photos", file, file.name);
  form.append("model", $("model").value);
  if (largest) form.append("largest_face", "1");
  let response;
  try {
    response = await fetch("/api/normalize", { method: "POST", body: form });
  } catch (e) {
    throw new Error("The request did not go through (" + e.message + "). Is nfgan serve still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : `The server answered HTTP ${response.status}.`);
  }
  return body;
}

function faceFigure(b64, caption, cls, alt) {
  return el("figure", {}, el("img", { class: cls, src: png(b64), alt }), el("figcaption", { text: caption }));
}

function expressionText(e) {
  return `${e.label} ${percent(e.probability)}`;
}

function okCard(r, answer) {
  const id = r.identity, ex = r.expression;
  const verdict = id.same_person === null ? el("span", { class: "verdict", text: "no threshold" })
    : el("span", { class: "verdict " + (id.same_person ? "pass" : "fail"),
      text: id.same_person ? "✓ same person" : "✗ different person" });
  const name = stem(r.name);
  return el("article", { class: "card ok", "data-index": r.index, "data-name": r.name },
    el("h2", {}, r.name, el("span", { class: "pose",
      text: `${poseText(r.pose)}${r.yaw_deg === null ? "" : ", yaw " + fixed(r.yaw_deg, 0) + "°"}` +
        (r.flipped ? ", mirrored" : "") + (r.faces_found > 1 ? `, ${r.faces_found} faces: the largest` : "") })),
    el("div", { class: "faces" },
      faceFigure(r.images.photo, "detected face", "photo", "the photo with the detected face"),
      faceFigure(r.images.aligned, "aligned input", "face aligned", "aligned input face"),
      faceFigure(r.images.normalized, "normalised (" + answer.model.key + ")", "face normalized",
        "normalised frontal neutral face")),
    el("table", { class: "numbers" }, el("tbody", {},
      el("tr", {}, el("th", { text: `identity distance (${id.evaluator})` }),
        el("td", {}, el("span", { class: "id-distance", "data-value": id.distance, text: fixed(id.distance) }),
          "  (threshold ", el("span", { class: "id-threshold", "data-value": id.threshold, text: fixed(id.threshold) }),
          ")", verdict)),
      el("tr", {}, el("th", { text: `expression (${ex.classifier})` }),
        el("td", {}, el("span", { class: "expr-in", "data-label": ex.input.label, text: expressionText(ex.input) }),
          " → ", el("span", { class: "expr-out", "data-label": ex.output.label, text: expressionText(ex.output) }))))),
    el("div", { class: "links" },
      el("a", { href: png(r.images.normalized), download: `${name}_normalized.png`, text: "normalised PNG" }),
      el("a", { href: png(r.images.aligned), download: `${name}_aligned.png`, text: "aligned PNG" }),
      el("a", { href: png(r.images.photo), download: `${name}_photo.png`, text: "photo with box" })));
}

function failedCard(r) {
  const card = el("article", { class: "card failed", "data-index": r.index, "data-name": r.name,
    "data-reason": r.reason },
    el("h2", {}, r.name, el("span", { class: "pose", text: r.reason })),
    r.images.photo ? el("div", { class: "faces" }, faceFigure(r.images.photo, "photo", "photo", "the photo")) : null,
    el("p", { class: "message", text: r.message }));
  if (r.can_take_largest) {
    const file = state.sent[r.index];
    card.append(el("button", { type: "button", class: "button take-largest", text: "Take the largest face",
      onclick: async (event) => {
        event.target.disabled = true;
        setStatus(`Normalising ${r.name} with the largest face …`);
        try {
          const again = await send([file], true);
          const fresh = { ...again.results[0], index: r.index };
          card.replaceWith(fresh.ok ? okCard(fresh, again) : failedCard(fresh));
          setStatus(`${r.name}: done (largest face).`);
        } catch (e) {
          showError(e.message);
          event.target.disabled = false;
          setStatus("");
        }
      } }));
  }
  return card;
}

function render(answer) {
  $("results").hidden = false;
  const s = answer.summary;
  $("summary").textContent = `${s.normalized} of ${s.photos} photo(s) normalised with the ${answer.model.label}` +
    (s.failed ? ` - ${s.failed} could not be used` : "");
  $("download").href = answer.download;
  const t = answer.identity;
  $("threshold-note").textContent = t.threshold === null ? `Identity: ${t.threshold_source}.`
    : `Identity: ${t.evaluator} distance between the aligned input and the normalised face; same person when ` +
      `at most ${fixed(t.threshold)} (${t.threshold_source}).`;
  $("cards").replaceChildren(...answer.results.map((r) => (r.ok ? okCard(r, answer) : failedCard(r))));
}

async function submit(event) {
  event.preventDefault();
  const files = state.files.slice();
  if (!files.length) return;
  const problem = limitsProblem(files);
  if (problem) { showError(problem); return; }
  showError(null);
  $("go").disabled = true;
  const started = performance.now();
  setStatus(`Normalising ${files.length} photo(s) … (the first request also loads the model)`);
  try {
    state.sent = files;
    const answer = await send(files, $("largest").checked);
    render(answer);
    setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  } catch (e) {
    showError(e.message);
    setStatus("");
  } finally {
    $("go").disabled = state.files.length === 0;
  }
}

async function startWebcam() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("No webcam access in this browser (it needs camera permission, on http://127.0.0.1 or https).");
    return;
  }
  try {
    state.webcam = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false });
  } catch (e) {
    showError("The webcam could not be opened: " + e.message);
    return;
  }
  $("video").srcObject = state.webcam;
  $("webcam").hidden = false;
}

function stopWebcam() {
  if (state.webcam) state.webcam.getTracks().forEach((track) => track.stop());
  state.webcam = null;
  $("video").srcObject = null;
  $("webcam").hidden = true;
}

function takePhoto() {
  const video = $("video");
  if (!video.videoWidth) return;
  const canvas = el("canvas", { width: video.videoWidth, height: video.videoHeight });
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    state.shots += 1;
    addFiles([new File([blob], `webcam-${state.shots}.png`, { type: "image/png" })]);
  }, "image/png");
}

function init() {
  $("files").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  $("form").addEventListener("submit", submit);
  $("webcam-start").addEventListener("click", startWebcam);
  $("webcam-stop").addEventListener("click", stopWebcam);
  $("webcam-shot").addEventListener("click", takePhoto);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  loadModels();
}

init();
