// Generate: a prompt, the model's options and references → POST /v1/videos, then the
// task live until its video plays here.

import { api, ApiError } from "../api.js";
import { el, clear, field, setFieldError, announce, errorBox, statusBadge, progressBar, isFinished, taskCost, poller } from "../ui.js";

const KINDS = { image: "image", video: "video", audio: "audio" };

function kindOf(file) {
  const major = (file.type || "").split("/")[0];
  return KINDS[major] || null;
}

// Length of a local video or audio file, read by the browser itself.
function mediaSeconds(file) {
  return new Promise((resolve) => {
    const media = document.createElement(file.type.startsWith("audio") ? "audio" : "video");
    const url = URL.createObjectURL(file);
    const done = (value) => {
      URL.revokeObjectURL(url);
      resolve(value);
    };
    media.preload = "metadata";
    media.onloadedmetadata = () => done(Number.isFinite(media.duration) ? media.duration : null);
    media.onerror = () => done(null);
    media.src = url;
  });
}

export function modelLimits(model) {
  const c = (model && model.capabilities) || {};
  const d = c.durations || {};
  const r = c.references || {};
  return {
    resolutions: Array.isArray(c.resolutions) ? c.resolutions : [],
    ratios: Array.isArray(c.ratios) ? c.ratios : [],
    minDuration: Number.isFinite(d.min) ? d.min : null,
    maxDuration: Number.isFinite(d.max) ? d.max : null,
    defaultDuration: c.default_duration ?? null,
    defaultResolution: c.default_resolution ?? null,
    audio: c.audio !== false,
    images: r.images ?? null,
    videos: r.videos ?? null,
    audios: r.audios ?? null,
    videoSeconds: r.video_total_seconds ?? null,
    audioSeconds: r.audio_total_seconds ?? null,
  };
}

function describeLimits(l) {
  const parts = [];
  if (l.minDuration !== null && l.maxDuration !== null) parts.push(`${l.minDuration}–${l.maxDuration} s`);
  if (l.resolutions.length) parts.push(l.resolutions.join(" / "));
  const refs = [];
  if (l.images !== null) refs.push(`${l.images} images`);
  if (l.videos !== null) refs.push(`${l.videos} videos${l.videoSeconds ? ` (${l.videoSeconds} s in all)` : ""}`);
  if (l.audios !== null) refs.push(`${l.audios} audio clips${l.audioSeconds ? ` (${l.audioSeconds} s in all)` : ""}`);
  if (refs.length) parts.push(`up to ${refs.join(", ")}`);
  parts.push(l.audio ? "audio on or off" : "no audio");
  return parts.join(" · ");
}

// Where an error's ``param`` is shown: the control it names, or the form's own slot.
const PARAM_FIELDS = {
  prompt: "gen-prompt",
  model: "gen-model",
  ratio: "gen-ratio",
  resolution: "gen-resolution",
  duration: "gen-duration",
  seconds: "gen-duration",
  seed: "gen-seed",
  generate_audio: "gen-audio",
  content: "gen-files",
  references: "gen-files",
  input_reference: "gen-files",
};

export function fieldForParam(param) {
  if (!param) return null;
  const head = String(param).split(/[.[]/)[0];
  return PARAM_FIELDS[head] || null;
}

export default async function generatePage(main) {
  main.append(el("h1", {}, "Generate a video"));
  const models = ((await api.get("/v1/models")) || {}).data || [];
  if (!models.length) {
    main.append(errorBox("No model is available to this API key."));
    return null;
  }
  const refs = []; // {kind, file, label, status, url, seconds, node}
  const stops = [];

  const modelSelect = el("select", { name: "model" }, models.map((m) => el("option", { value: m.id }, m.id)));
  const limitsText = el("span", {});
  const prompt = el("textarea", { name: "prompt", rows: "4", required: true, placeholder: "the cat in image 1 jumps onto the sofa" });
  const ratio = el("select", { name: "ratio" });
  const resolution = el("select", { name: "resolution" });
  const duration = el("input", { name: "duration", type: "number", inputmode: "numeric", step: "1" });
  const audio = el("input", { name: "generate_audio", type: "checkbox", checked: true });
  const seed = el("input", { name: "seed", type: "number", inputmode: "numeric", placeholder: "random" });
  // Reached through the "Add reference files" button (and drag and drop), never by Tab.
  const fileInput = el("input", { type: "file", multiple: true, accept: "image/*,video/*,audio/*", class: "visually-hidden", tabindex: "-1", "aria-label": "Reference files" });
  const refList = el("ul", { class: "refs", "aria-label": "References" });
  const formError = el("div", { class: "error", role: "alert", id: "gen-form-error" });
  const submit = el("button", { type: "submit", class: "primary" }, "Generate");
  const result = el("section", { class: "result", "aria-label": "Result", "aria-live": "polite" });

  function current() {
    return models.find((m) => m.id === modelSelect.value) || models[0];
  }

  function fillOptions() {
    const l = modelLimits(current());
    const keepRatio = ratio.value;
    clear(ratio).append(el("option", { value: "" }, "default"), ...l.ratios.map((r) => el("option", { value: r }, r)));
    if (l.ratios.includes(keepRatio)) ratio.value = keepRatio;
    const keepRes = resolution.value;
    clear(resolution).append(...l.resolutions.map((r) => el("option", { value: r }, r)));
    resolution.value = l.resolutions.includes(keepRes) ? keepRes : l.defaultResolution || l.resolutions[0] || "";
    if (l.minDuration !== null) duration.min = String(l.minDuration);
    if (l.maxDuration !== null) duration.max = String(l.maxDuration);
    if (!duration.value) duration.value = String(l.defaultDuration ?? l.minDuration ?? 5);
    audio.disabled = !l.audio;
    if (!l.audio) audio.checked = false;
    limitsText.textContent = describeLimits(l);
  }
  modelSelect.addEventListener("change", () => {
    fillOptions();
    checkLimits();
  });

  function relabel() {
    const counters = { image: 0, video: 0, audio: 0 };
    for (const r of refs) {
      counters[r.kind] += 1;
      r.label = `${r.kind} ${counters[r.kind]}`;
      r.labelNode.textContent = r.label;
      r.removeButton.setAttribute("aria-label", `Remove ${r.label}`);
    }
  }

  function checkLimits() {
    const l = modelLimits(current());
    const problems = [];
    const count = (k) => refs.filter((r) => r.kind === k).length;
    const total = (k) => refs.filter((r) => r.kind === k).reduce((s, r) => s + (r.seconds || 0), 0);
    if (l.images !== null && count("image") > l.images) problems.push(`${current().id} takes at most ${l.images} images`);
    if (l.videos !== null && count("video") > l.videos) problems.push(`at most ${l.videos} videos`);
    if (l.audios !== null && count("audio") > l.audios) problems.push(`at most ${l.audios} audio clips`);
    if (l.videoSeconds && total("video") > l.videoSeconds) problems.push(`reference videos may last ${l.videoSeconds} s in all (these: ${total("video").toFixed(1)} s)`);
    if (l.audioSeconds && total("audio") > l.audioSeconds) problems.push(`reference audio may last ${l.audioSeconds} s in all (these: ${total("audio").toFixed(1)} s)`);
    setFieldError(form, "gen-files", problems.join("; "));
    const d = Number(duration.value);
    let durationProblem = "";
    if (duration.value && l.minDuration !== null && l.maxDuration !== null && d !== -1 && (d < l.minDuration || d > l.maxDuration)) {
      durationProblem = `${current().id} makes ${l.minDuration} to ${l.maxDuration} s`;
    }
    setFieldError(form, "gen-duration", durationProblem);
    return problems.length === 0 && !durationProblem;
  }
  duration.addEventListener("input", checkLimits);

  async function addFiles(files) {
    for (const file of files) {
      const kind = kindOf(file);
      if (!kind) {
        setFieldError(form, "gen-files", `${file.name} is not an image, video or audio file`);
        continue;
      }
      const labelNode = el("strong", {});
      const state = el("span", { class: "muted" }, "uploading…");
      const removeButton = el("button", { type: "button", class: "link" }, "Remove");
      const preview =
        kind === "image" ? el("img", { alt: "", src: URL.createObjectURL(file) }) : el("span", { class: "ref-kind", "aria-hidden": "true" }, kind === "video" ? "▶" : "♪");
      const node = el("li", {}, preview, el("span", { class: "ref-text" }, labelNode, " ", el("span", {}, file.name), " ", state), removeButton);
      const ref = { kind, file, label: "", status: "uploading", url: null, seconds: null, node, labelNode, removeButton };
      removeButton.addEventListener("click", () => {
        refs.splice(refs.indexOf(ref), 1);
        node.remove();
        relabel();
        checkLimits();
        announce(`Removed ${ref.label}`);
      });
      refs.push(ref);
      refList.append(node);
      relabel();
      if (kind !== "image") ref.seconds = await mediaSeconds(file);
      checkLimits();
      const form_ = new FormData();
      form_.append("file", file, file.name);
      form_.append("purpose", "reference");
      try {
        const uploaded = await api.upload("/v1/files", form_);
        ref.url = uploaded.url;
        ref.status = "ready";
        state.textContent = "ready";
        announce(`${ref.label} uploaded`);
      } catch (err) {
        ref.status = "failed";
        state.textContent = `upload failed: ${err.message}`;
        state.className = "error";
      }
    }
  }
  fileInput.addEventListener("change", () => {
    addFiles([...fileInput.files]);
    fileInput.value = "";
  });
  const pick = el("button", { type: "button", id: "gen-files", onclick: () => fileInput.click() }, "Add reference files");
  const drop = el(
    "div",
    { class: "drop" },
    el("p", {}, "Drop images, videos or audio here, or "),
    pick,
    fileInput,
    refList,
  );
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files) addFiles([...e.dataTransfer.files]);
  });

  const form = el(
    "form",
    { class: "card", "aria-label": "New video", novalidate: true },
    el(
      "div",
      { class: "grid2" },
      field("Model", modelSelect, { id: "gen-model", hint: limitsText }),
      field("Ratio", ratio, { id: "gen-ratio" }),
    ),
    field("Prompt", prompt, { id: "gen-prompt", hint: "Refer to references by their labels: image 1, video 1, audio 1." }),
    el(
      "div",
      { class: "grid4" },
      field("Resolution", resolution, { id: "gen-resolution" }),
      field("Duration (seconds)", duration, { id: "gen-duration" }),
      field("Seed", seed, { id: "gen-seed" }),
      el("div", { class: "field check" }, audio, el("label", { for: "gen-audio" }, "Generate audio"), el("div", { class: "error", id: "gen-audio-error" })),
    ),
    el("div", { class: "field" }, el("span", { class: "label" }, "References"), drop, el("div", { class: "error", id: "gen-files-error", role: "alert" })),
    formError,
    el("div", { class: "actions" }, submit),
  );
  audio.id = "gen-audio";
  fillOptions();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const id of Object.values(PARAM_FIELDS)) setFieldError(form, id, "");
    formError.textContent = "";
    if (!prompt.value.trim()) {
      setFieldError(form, "gen-prompt", "Write a prompt: what should happen in the video?");
      prompt.focus();
      return;
    }
    if (!checkLimits()) return;
    if (refs.some((r) => r.status === "uploading")) {
      setFieldError(form, "gen-files", "Wait for the uploads to finish.");
      return;
    }
    if (refs.some((r) => r.status === "failed")) {
      setFieldError(form, "gen-files", "Remove the references that failed to upload.");
      return;
    }
    const body = {
      model: modelSelect.value,
      prompt: prompt.value.trim(),
      resolution: resolution.value || undefined,
      duration: duration.value ? Number(duration.value) : undefined,
      generate_audio: audio.checked,
    };
    if (ratio.value) body.ratio = ratio.value;
    if (seed.value !== "") body.seed = Number(seed.value);
    if (refs.length) {
      body.content = refs.map((r) => ({ type: `${r.kind}_url`, [`${r.kind}_url`]: { url: r.url } }));
    }
    submit.disabled = true;
    try {
      const task = await api.post("/v1/videos", body);
      announce(`Task ${task.id} created`);
      stops.push(watchTask(result, task));
    } catch (err) {
      const target = err instanceof ApiError ? fieldForParam(err.param) : null;
      if (!(target && setFieldError(form, target, err.message))) formError.textContent = err.message;
      const control = target && form.querySelector(`#${target}`);
      if (control) control.focus();
    } finally {
      submit.disabled = false;
    }
  });

  main.append(form, result);
  return () => stops.forEach((stop) => stop());
}

// One task's live card: status and progress by polling, then the video.
export function watchTask(container, task) {
  const card = el("article", { class: "card task-live", "aria-label": `Task ${task.id}` });
  container.prepend(card);
  let stop = () => {};
  function render(t) {
    clear(card);
    card.append(
      el("h2", {}, el("a", { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.id)),
      el("p", {}, statusBadge(t), " ", progressBar(t, `Progress of ${t.id}`), ` ${t.progress ?? 0}%`, " · ", taskCost(t)),
    );
    if (t.error) card.append(errorBox(`${t.error.code}: ${t.error.message}`));
    const url = t.video_url || t.url;
    if (t.status === "completed" && url) {
      card.append(
        el("video", { src: url, controls: true, playsinline: true, preload: "metadata", poster: t.thumbnail_url || null, "aria-label": `Video of ${t.id}` }),
      );
    }
  }
  render(task);
  let last = task;
  stop = poller(async () => {
    if (isFinished(last.status)) {
      stop();
      return;
    }
    last = await api.get(`/v1/videos/${encodeURIComponent(task.id)}`);
    render(last);
    if (isFinished(last.status)) announce(`Task ${last.id} ${last.status}`);
  }, 1000);
  return () => stop();
}
