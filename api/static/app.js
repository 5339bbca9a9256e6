// The page over the VideoMAE V2 API: plain JavaScript, no build step, no library, nothing fetched from elsewhere.
// Every number and message shown comes from the API; its 4xx answers ({"error", "detail"}) are shown as they are.
// The reconstruction controls are built from the API's own OpenAPI document (/openapi.json), so the mask kinds and
// bounds are the server's, declared once there. Requests are XMLHttpRequests (they report upload progress and can
// be aborted); each long operation belongs to a job that the Cancel button aborts.
"use strict";

const KEY_STORE = "videomae.apiKey"; // sessionStorage: this tab only, gone when it closes
const THUMB_CONCURRENCY = 2;
const $ = (id) => document.getElementById(id);

const state = {
  key: "",
  model: null, // /v1/models' first model
  limits: null, // /v1/limits
  index: null, // /v1/index, or null when the server has none
  openapi: null,
  file: null,
  job: null, // the running Job, if any
  thumbs: null, // the Job fetching the shown results' thumbnails
  uploadResults: null, // the last search answer for the uploaded video (to come back to)
  query: null, // (job) => the shown results' search again
  embedUrl: null,
  thumbUrls: [],
  frames: 0, // the uploaded video's frames (the timeline's length)
  lastIndices: null, // the frames of the last reconstruction (outlined on the timeline)
};

// ------------------------------------------------------------------------------------------------ requests
class ApiError extends Error {
  constructor(status, tag, detail, retryAfter = 0) {
    super(detail);
    this.status = status;
    this.tag = tag;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

class Job {
  constructor() {
    this.xhrs = new Set();
    this.cancelled = false;
  }
  track(xhr) {
    this.xhrs.add(xhr);
    xhr.addEventListener("loadend", () => this.xhrs.delete(xhr));
  }
  cancel() {
    this.cancelled = true;
    for (const xhr of [...this.xhrs]) xhr.abort();
  }
}

async function errorOf(xhr) {
  let body = xhr.response;
  try {
    if (body instanceof Blob) body = JSON.parse(await body.text());
    else if (typeof body === "string") body = JSON.parse(body);
  } catch (_) {
    body = null;
  }
  const retry = Number(xhr.getResponseHeader("Retry-After")) || 0;
  if (body && typeof body.error === "string") return new ApiError(xhr.status, body.error, String(body.detail), retry);
  return new ApiError(xhr.status, `http_${xhr.status}`, xhr.statusText || "the request failed", retry);
}

// method, path (relative to the page), options: params, file (sent as the multipart field `file`), responseType,
// job (to cancel it), onUpload(fraction) and onSent() (the body is on the server; it is working).
function request(method, path, { params, file, responseType = "json", job, onUpload, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const query = params ? `?${new URLSearchParams(params)}` : "";
    xhr.open(method, path + query);
    xhr.responseType = responseType;
    if (state.key) xhr.setRequestHeader("Authorization", `Bearer ${state.key}`);
    if (onUpload) xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onUpload(e.loaded / e.total));
    if (onSent) xhr.upload.addEventListener("load", onSent);
    xhr.addEventListener("load", async () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(await errorOf(xhr));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error", "the server did not answer")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "cancelled", "cancelled")));
    if (job) {
      if (job.cancelled) return reject(new ApiError(0, "cancelled", "cancelled"));
      job.track(xhr);
    }
    if (file) {
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    } else {
      xhr.send();
    }
  });
}

// ------------------------------------------------------------------------------------------------ small helpers
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("aria-") || k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(box, err) {
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  const where = err.status ? `${err.status} ${err.tag}` : err.tag;
  box.append(el("strong", { class: "detail", text: err.detail }), " ", el("code", { class: "tag", text: where }));
  box.hidden = false;
}

function fillList(dl, rows) {
  dl.replaceChildren();
  for (const [term, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(el("dt", { text: term }), el("dd", { text: String(value) }));
  }
}

const bytes = (n) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(n % 2 ** 20 ? 1 : 0)} MiB` : `${Math.round(n / 1024)} KiB`);
const seconds = (s) => `${(+s).toFixed(s < 10 ? 2 : 1)} s`;
const basename = (uri) => String(uri).split(/[\\/]/).pop();
const short = (id) => (id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-8)}` : id);

// ------------------------------------------------------------------------------------------------ progress, jobs
function startJob() {
  if (state.job) state.job.cancel();
  const job = new Job();
  state.job = job;
  $("progress-row").hidden = false;
  $("cancel").disabled = false;
  return job;
}

function progress(text, fraction) {
  $("progress-text").textContent = text;
  const bar = $("progress");
  if (fraction === null || fraction === undefined) bar.removeAttribute("value"); // indeterminate: the server works
  else bar.value = fraction;
}

function endJob(job, text) {
  if (state.job !== job) return;
  state.job = null;
  progress(text, job.cancelled ? 0 : 1);
  $("cancel").disabled = true;
}

// Run `steps(job)` as the one job of the page (a new one cancels the old); its errors go to `box`.
async function runJob(steps, box = $("upload-error")) {
  showError(box, null);
  const job = startJob();
  try {
    await steps(job);
    endJob(job, "Done.");
  } catch (err) {
    endJob(job, err.tag === "cancelled" ? "Cancelled." : "Stopped.");
    if (err.tag !== "cancelled") showError(box, err);
  }
}

// One upload with its progress line: "Uploading clip.mp4: 45 %", then what the server is doing.
function uploadTo(path, params, job, working) {
  const name = state.file.name;
  progress(`Uploading ${name}`, 0);
  return request("POST", path, {
    params,
    file: state.file,
    job,
    onUpload: (f) => progress(`Uploading ${name}: ${Math.round(f * 100)} %`, f),
    onSent: () => progress(working, null),
  });
}

// ------------------------------------------------------------------------------------------------ connecting
async function connect(key) {
  state.key = key;
  showError($("key-error"), null);
  $("key-status").textContent = "Connecting…";
  let models;
  try {
    models = await request("GET", "v1/models");
  } catch (err) {
    $("key-status").textContent = "";
    showError($("key-error"), err);
    for (const id of ["server-section", "upload-section", "recon-section", "embed-section", "search-section"]) {
      $(id).hidden = true;
    }
    return;
  }
  if (key) sessionStorage.setItem(KEY_STORE, key);
  state.model = models.models[0];
  try {
    [state.limits, state.openapi] = await Promise.all([
      request("GET", "v1/limits"),
      request("GET", "openapi.json"),
    ]);
  } catch (err) {
    showError($("key-error"), err);
    return;
  }
  let indexError = null;
  try {
    state.index = await request("GET", "v1/index");
  } catch (err) {
    state.index = null;
    indexError = err;
  }
  showServer(indexError);
  buildControls();
  $("key-status").textContent = `Connected: ${state.model.id}.`;
  $("server-section").hidden = false;
  $("upload-section").hidden = false;
  document.body.dataset.connected = "true";
}

function showServer(indexError) {
  const m = state.model;
  fillList($("model-info"), [
    ["id", m.id],
    ["preset", m.preset ?? "custom"],
    ["kind", m.model_type],
    ["input", `${m.num_frames} frames of ${m.img_size} x ${m.img_size} px`],
    ["cubes", `${m.tubelet_size} frames x ${m.patch_size} x ${m.patch_size} px`],
    ["feature", `${m.feature_dim} numbers: ${m.feature}`],
    ["parameters", m.parameters.toLocaleString("en")],
    ["reconstructs", m.can_reconstruct ? "yes" : "no (no decoder)"],
  ]);
  const ix = state.index;
  if (ix) {
    const w = ix.windows || {};
    fillList($("index-info"), [
      ["clips", `${ix.clips} from ${ix.videos} videos`],
      ["built", ix.built_at],
      ["from features", ix.features],
      ["extracted by", [ix.model_source, ix.model_preset && `(preset ${ix.model_preset})`].filter(Boolean).join(" ")],
      ["windows", w.clip_len ? `${w.clip_len} frames, every ${w.window_stride}, ${w.transform} at ${w.img_size} px` : ""],
      ["index", `${ix.kind}, ${ix.metric}, ${ix.dim} dimensions`],
      ["served model made it", ix.made_by_served_model ? "yes" : "no: uploads cannot be queries, stored clips can"],
    ]);
    $("index-note").textContent = "";
  } else {
    $("index-info").replaceChildren();
    $("index-note").textContent = indexError ? `No search: ${indexError.detail}` : "";
  }
  const l = state.limits;
  $("limits").textContent =
    `This server takes videos up to ${bytes(l.max_upload_bytes)}, ${l.max_duration_s} s and ${l.max_frames} ` +
    `frames, frames up to ${l.max_width} x ${l.max_height} px and ${(l.max_pixels / 1e6).toFixed(2)} megapixels.`;
  $("search-section").hidden = true;
}

// The reconstruction options, from the server's OpenAPI document: a select for an enumeration, a number otherwise.
function buildControls() {
  const box = $("recon-controls");
  box.replaceChildren();
  const ops = state.openapi.paths["/v1/reconstruct"].post.parameters;
  for (const p of ops) {
    if (p.name === "format") continue;
    const s = p.schema || {};
    const id = `opt-${p.name}`;
    let input;
    if (s.enum) {
      input = el("select", { id, name: p.name }, s.enum.map((v) => el("option", { value: v, text: v })));
    } else {
      const isInt = s.type === "integer";
      input = el("input", { id, name: p.name, type: "number", step: isInt ? "1" : "0.05" });
      const lo = s.minimum ?? s.exclusiveMinimum;
      const hi = s.maximum ?? s.exclusiveMaximum;
      if (lo !== undefined) input.min = s.exclusiveMinimum !== undefined && !isInt ? lo + 0.05 : lo;
      if (hi !== undefined) input.max = s.exclusiveMaximum !== undefined && !isInt ? hi - 0.05 : hi;
    }
    if (s.default !== undefined) input.value = s.default;
    const hint = el("span", { id: `${id}-hint`, class: "hint", text: p.description || "" });
    input.setAttribute("aria-describedby", hint.id);
    box.append(el("div", { class: "control" }, [el("label", { htmlFor: id, text: p.name.replace(/_/g, " ") }), input,
      hint]));
  }
  const k = state.openapi.paths["/v1/search"].post.parameters.find((p) => p.name === "k");
  if (k) {
    $("k").min = k.schema.minimum;
    $("k").max = k.schema.maximum;
    $("k").value = k.schema.default;
  }
  $("run").disabled = !state.file || !state.model.can_reconstruct;
}

function reconParams() {
  const params = { format: "frames" };
  for (const input of $("recon-controls").querySelectorAll("input, select")) {
    if (input.value !== "") params[input.name] = input.value;
  }
  return params;
}

// ------------------------------------------------------------------------------------------------ a video
async function analyse(file) {
  state.file = file;
  state.uploadResults = null;
  state.query = null;
  state.frames = 0;
  $("file-line").textContent = `${file.name}, ${bytes(file.size)}`;
  $("run").disabled = !state.model.can_reconstruct;
  const start = $("opt-start");
  if (start) start.value = 0;
  for (const id of ["recon-section", "embed-section", "search-section"]) $(id).hidden = true;
  stopPlayer();
  await runJob(async (job) => {
    if (state.model.can_reconstruct) await reconstruct(job);
    await embed(job);
    if (state.index) await searchUpload(job);
  });
}

async function reconstruct(job) {
  const body = await uploadTo("v1/reconstruct", reconParams(), job, "Reconstructing the masked clip…");
  await showReconstruction(body);
  markSpan(body.frame_indices);
}

async function embed(job) {
  showError($("embed-error"), null);
  const body = await uploadTo("v1/embed", {}, job, "Embedding every window…");
  showEmbedding(body);
}

async function searchUpload(job, startFrame) {
  showError($("search-error"), null);
  $("search-section").hidden = false;
  const params = { k: $("k").value };
  if (startFrame !== undefined) params.start_frame = startFrame;
  let body;
  try {
    body = await uploadTo("v1/search", params, job, "Searching the index…");
  } catch (err) {
    if (err.tag === "cancelled" || err.status === 0) throw err;
    showError($("search-error"), err); // e.g. 409 index_model_mismatch: the rest of the page stands
    return;
  }
  const what = startFrame === undefined
    ? `your video (the mean of its ${body.query.windows} windows)` : `your video's window from frame ${startFrame}`;
  state.query = (job2) => searchUpload(job2, startFrame);
  state.uploadResults = { body, what, query: state.query };
  showResults(body, what);
}

// ------------------------------------------------------------------------------------------------ the player
const player = { images: [], i: 0, timer: null, fps: 12.5, videoFps: null, indices: [] };

function loadImage(src) {
  const img = new Image();
  img.src = src;
  return img.decode().then(() => img);
}

async function showReconstruction(body) {
  stopPlayer();
  player.images = await Promise.all(body.frames_png_base64.map((b) => loadImage(`data:image/png;base64,${b}`)));
  player.indices = body.frame_indices;
  const stride = body.frame_indices.length > 1 ? body.frame_indices[1] - body.frame_indices[0] : 1;
  player.fps = body.fps || 12.5; // the clip's rate in video time (unknown: a common one)
  player.videoFps = body.fps ? body.fps * stride : null;
  const canvas = $("player");
  canvas.width = player.images[0].naturalWidth;
  canvas.height = player.images[0].naturalHeight;
  canvas.dataset.indices = body.frame_indices.join(",");
  $("frame").max = player.images.length - 1;
  fillList($("recon-stats"), [
    ["loss", body.loss.toFixed(4)],
    ["PSNR", `${body.psnr.toFixed(2)} dB`],
    ["cubes", `${body.num_tokens}: ${body.num_hidden} hidden, ${body.num_decoded} decoded, ${body.num_scored} scored`],
    ["frames", body.frame_indices.join(", ")],
  ]);
  $("recon-section").hidden = false;
  draw(0);
  play();
}

function draw(i) {
  player.i = i;
  const canvas = $("player");
  canvas.getContext("2d").drawImage(player.images[i], 0, 0);
  canvas.dataset.frame = String(i);
  $("frame").value = i;
  const n = player.images.length;
  const at = player.indices[i];
  const when = player.videoFps ? ` (${seconds(at / player.videoFps)})` : "";
  const text = `Frame ${i + 1} of ${n}: video frame ${at}${when}`;
  $("frame-line").textContent = text;
  canvas.setAttribute("aria-label", `Original, masked input and reconstruction side by side. ${text}.`);
}

function play() {
  stopPlayer();
  if (!player.images.length) return;
  const interval = 1000 / (player.fps * Number($("speed").value));
  player.timer = setInterval(() => draw((player.i + 1) % player.images.length), interval);
  $("player").dataset.state = "playing";
  $("play").textContent = "Pause";
  $("play").setAttribute("aria-pressed", "true");
}

function stopPlayer() {
  if (player.timer) clearInterval(player.timer);
  player.timer = null;
  $("player").dataset.state = "paused";
  $("play").textContent = "Play";
  $("play").setAttribute("aria-pressed", "false");
}

function step(delta) {
  stopPlayer();
  const n = player.images.length;
  if (n) draw((player.i + delta + n) % n);
}

// ------------------------------------------------------------------------------------------------ embedding
function showEmbedding(body) {
  const windows = body.clips.length;
  $("embed-line").textContent = `${body.dim} numbers (${body.pool} over ${windows} windows of ${body.clip_len} ` +
    `frames, ${body.frame_stride} apart); the video: ${body.num_frames} frames at ${body.fps.toFixed(2)} fps.`;
  if (state.embedUrl) URL.revokeObjectURL(state.embedUrl);
  state.embedUrl = URL.createObjectURL(new Blob([JSON.stringify(body)], { type: "application/json" }));
  const link = $("embed-download");
  link.href = state.embedUrl;
  link.download = `${state.file.name.replace(/\.[^.]*$/, "")}.embedding.json`;
  const line = $("timeline");
  line.replaceChildren();
  const n = Math.max(body.num_frames, 1);
  const fps = body.fps || 1;
  body.clips.forEach((c, i) => {
    const label = `Window ${i + 1}: frames ${c.start_frame} to ${c.end_frame} ` +
      `(${seconds(c.start_frame / fps)} to ${seconds((c.end_frame + 1) / fps)})`;
    const b = el("button", { type: "button", class: "window", title: label, "aria-label": label });
    b.style.left = `${(100 * c.start_frame) / n}%`;
    b.style.width = `${(100 * (c.end_frame - c.start_frame + 1)) / n}%`;
    b.dataset.start = String(c.start_frame);
    b.addEventListener("click", () => useWindow(c.start_frame));
    line.append(b);
  });
  line.append(el("div", { id: "span", class: "span", "aria-hidden": "true" }));
  state.frames = n;
  $("axis-end").textContent = seconds(n / fps);
  $("timeline-search-hint").hidden = !state.index;
  $("embed-section").hidden = false;
  markSpan(state.lastIndices);
}

function markSpan(indices) {
  state.lastIndices = indices;
  const span = $("span");
  if (!span || !indices || !state.frames) return;
  const first = indices[0];
  const last = indices[indices.length - 1];
  span.style.left = `${(100 * first) / state.frames}%`;
  span.style.width = `${(100 * (last - first + 1)) / state.frames}%`;
  span.title = `the reconstructed clip: frames ${first} to ${last}`;
}

async function useWindow(startFrame) {
  const start = $("opt-start");
  if (start) start.value = startFrame;
  await runJob(async (job) => {
    if (state.model.can_reconstruct) await reconstruct(job);
    if (state.index) await searchUpload(job, startFrame);
  });
}

// ------------------------------------------------------------------------------------------------ search
function showResults(body, what) {
  if (state.thumbs) state.thumbs.cancel();
  for (const u of state.thumbUrls) URL.revokeObjectURL(u);
  state.thumbUrls = [];
  $("query-line").textContent = `${body.results.length} nearest of ${body.index_size} clips to ${what}.`;
  $("back-to-upload").hidden = !state.uploadResults || body === state.uploadResults.body;
  const list = $("results");
  list.replaceChildren();
  const todo = [];
  body.results.forEach((hit, i) => {
    const when = hit.start_s !== null ? `${seconds(hit.start_s)} to ${seconds(hit.end_s)}` :
      `frames ${hit.start_frame} to ${hit.end_frame}`;
    const img = el("img", { alt: `Frame from ${basename(hit.uri)}, ${when}`, width: 160, height: 120 });
    const thumb = el("div", { class: "thumb" }, [img]);
    const label = `Search with clip ${i + 1}: ${basename(hit.uri)}, ${when}, score ${hit.score.toFixed(3)}`;
    const button = el("button", { type: "button", class: "hit", "aria-label": label, "data-clip": hit.clip_id }, [
      thumb,
      el("span", { class: "score", text: `#${i + 1} · score ${hit.score.toFixed(3)}` }),
      el("span", { class: "name", text: basename(hit.uri) }),
      el("span", { class: "when", text: when }),
      el("span", { class: "label", text: hit.label ? `label: ${hit.label}` : "" }),
    ]);
    button.addEventListener("click", () => runJob((job) => searchClip(hit, job), $("search-error")));
    list.append(el("li", {}, [button]));
    todo.push([hit.clip_id, img, thumb]);
  });
  list.dataset.query = body.query.kind === "upload" ? "upload" : body.query.id;
  $("search-section").hidden = false;
  loadThumbnails(todo);
}

async function searchClip(hit, job) {
  progress(`Searching with ${basename(hit.uri)} from frame ${hit.start_frame}…`, null);
  const body = await request("POST", "v1/search", { params: { clip_id: hit.clip_id, k: $("k").value }, job });
  state.query = (job2) => searchClip(hit, job2);
  showResults(body, `the clip of ${basename(hit.uri)} from frame ${hit.start_frame} (its own video left out)`);
  $("results").querySelector("button")?.focus();
}

// Thumbnails need the key, so they are fetched (not <img src>) a few at a time; a busy server's 503 is retried.
function loadThumbnails(todo) {
  const job = new Job();
  state.thumbs = job;
  const next = async () => {
    while (todo.length && !job.cancelled) {
      const [clip, img, box] = todo.shift();
      for (let attempt = 0; attempt < 4; attempt++) {
        try {
          const blob = await request("GET", "v1/search/thumbnail", { params: { clip_id: clip }, responseType: "blob",
            job });
          const url = URL.createObjectURL(blob);
          state.thumbUrls.push(url);
          img.src = url;
          break;
        } catch (err) {
          if (err.status === 503 && attempt < 3) {
            await new Promise((r) => setTimeout(r, 1000 * (err.retryAfter || 1)));
            continue;
          }
          if (err.tag !== "cancelled") box.replaceChildren(el("span", { class: "no-thumb", text: err.detail }));
          break;
        }
      }
    }
  };
  for (let i = 0; i < THUMB_CONCURRENCY; i++) next();
}

// ------------------------------------------------------------------------------------------------ wiring
function wire() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    connect($("api-key").value.trim());
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    state.key = "";
    $("api-key").value = "";
    $("key-status").textContent = "The key is forgotten in this tab.";
  });
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (f) analyse(f);
  });
  const drop = $("drop");
  // Dropping a file anywhere else must not make the browser navigate to it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) analyse(f);
  });
  $("recon-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.file) runJob(reconstruct);
  });
  $("cancel").addEventListener("click", () => state.job && state.job.cancel());
  $("play").addEventListener("click", () => (player.timer ? stopPlayer() : play()));
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("frame").addEventListener("input", () => {
    stopPlayer();
    if (player.images.length) draw(Number($("frame").value));
  });
  $("speed").addEventListener("change", () => player.timer && play());
  $("search-form").addEventListener("submit", (e) => { // Enter in "Clips": the same query, k results
    e.preventDefault();
    if (state.query) runJob(state.query, $("search-error"));
  });
  $("back-to-upload").addEventListener("click", () => {
    if (!state.uploadResults) return;
    state.query = state.uploadResults.query;
    showResults(state.uploadResults.body, state.uploadResults.what);
  });
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved !== null) {
    $("api-key").value = saved;
    connect(saved);
  }
}

wire();
