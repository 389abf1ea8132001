// Search: by an upload (drop anywhere on the page, paste or choose), an image URL, an indexed
// image, or words (with a CLIP-style model; beside a picture they steer it); the query shown
// beside its results; "More" / "Less" refine it; the minimum similarity filters what is shown,
// and a line marks where the close matches end.
import { api, isAbort, Latest } from "./api.js";
import { $, baseName, card, el, folderOptions, plural, say } from "./dom.js";
import { folders } from "./folders.js";
import { go, params, record, viewOf } from "./router.js";
import { offerList, openViewer } from "./viewer.js";

const request = new Latest();
const previews = new Map(); // sha256 of an upload -> a local URL of its picture
const paths = new Map(); // image id -> path, for the feedback chips
let shown = []; // the results of the last answer
let shownKey = null; // the query they answer
let lastTook = null;
let uploadName = ""; // the file searched with, while its search runs
const PICTURE_MIN = 0.2; // the default minimum similarity of a search by a picture (none for words)
const CLOSE = { drop: 0.1, above: 0.5 }; // close matches end at the first drop this large from this high

const list = (text) => (text || "").split(",").filter(Boolean).map(Number).filter(Number.isSafeInteger);

function stateOf(p) {
  let query = null;
  if (p.get("id")) query = { kind: "id", image_id: Number(p.get("id")) };
  else if (p.get("upload")) query = { kind: "upload", upload: p.get("upload") };
  else if (p.get("url")) query = { kind: "url", url: p.get("url") };
  const k = Math.min(1000, Math.max(1, Number(p.get("k")) || 20));
  const text = (p.get("text") || "").trim().slice(0, 1000);
  return { query, text, k, min: p.get("min") || "", pos: list(p.get("pos")), neg: list(p.get("neg")), folder: p.get("folder") || "" };
}

function paramsOf(state) {
  const p = new URLSearchParams({ view: "search" });
  const q = state.query;
  if (q && q.kind === "id") p.set("id", q.image_id);
  if (q && q.kind === "upload") p.set("upload", q.upload);
  if (q && q.kind === "url") p.set("url", q.url);
  if (state.text) p.set("text", state.text);
  if (state.k !== 20) p.set("k", state.k);
  if (state.min !== "") p.set("min", state.min);
  if (state.pos.length) p.set("pos", state.pos.join(","));
  if (state.neg.length) p.set("neg", state.neg.join(","));
  if (state.folder) p.set("folder", state.folder);
  return p;
}

// Nothing searched for: the page shows the library under the form.
export const isIdle = (p) => viewOf(p) === "search" && !stateOf(p).query && !stateOf(p).text;

const keyOf = (state) => JSON.stringify([state.query, state.text, state.k, state.pos, state.neg, state.folder]);

function busy(on) {
  $("results").setAttribute("aria-busy", on ? "true" : "false");
  $("search").disabled = on;
  $("search").textContent = on ? "Searching…" : "Search";
}

// --- the query ----------------------------------------------------------------------------

async function showQuery(query, signal, words = "") {
  const panel = $("query");
  const image = $("query-image");
  const text = $("query-text");
  panel.hidden = !query && !words;
  $("query-words").textContent = words ? `${query ? " + " : ""}“${words}”` : "";
  if (!query) {
    image.hidden = true;
    text.replaceChildren();
    return;
  }
  if (query.kind === "upload" && !query.upload) return; // an upload on its way: its preview shows
  image.hidden = false;
  if (query.kind === "url") {
    image.hidden = true; // the page loads pictures from this server only
    text.replaceChildren("the image at ", el("a", { href: query.url, target: "_blank", rel: "noopener noreferrer" }, query.url));
  } else if (query.kind === "upload") {
    image.src = previews.get(query.upload) || `/api/queries/${query.upload}?size=256`;
    image.alt = "the uploaded image";
    text.textContent = "the uploaded image";
  } else {
    image.src = `/api/images/${query.image_id}/thumb?size=256`;
    image.alt = `image ${query.image_id}`;
    text.textContent = `image ${query.image_id}`;
    try {
      const info = await api(`/api/images/${query.image_id}`, { signal });
      image.alt = baseName(info.path);
      text.textContent = `${baseName(info.path)} (image ${query.image_id})`;
      text.title = info.path;
    } catch (error) {
      if (!isAbort(error)) text.textContent = `image ${query.image_id} (${error.message})`;
    }
  }
}

// The images marked "More" and "Less": a chip each, with its picture, its name and a button
// that takes the mark away.
function showFeedback(state) {
  const box = $("feedback");
  box.hidden = !state.pos.length && !state.neg.length;
  for (const [testid, ids, label] of [["positive", state.pos, "more"], ["negative", state.neg, "less"]]) {
    $(testid).parentElement.hidden = !ids.length;
    $(testid).replaceChildren(...ids.map((id) => {
      const known = () => (paths.has(id) ? `${baseName(paths.get(id))} (image ${id})` : `image ${id}`);
      const name = el("span", { className: "chip-name" }, paths.has(id) ? baseName(paths.get(id)) : `image ${id}`);
      const remove = el("button", { type: "button", className: "remove", title: "Remove",
        "aria-label": `Remove ${known()} from “${label} like”` }, "×");
      if (!paths.has(id)) {
        api(`/api/images/${id}`).then((info) => {
          paths.set(id, info.path);
          name.textContent = baseName(info.path);
          remove.setAttribute("aria-label", `Remove ${known()} from “${label} like”`);
        }).catch(() => {});
      }
      remove.addEventListener("click", () => {
        const next = { ...state, pos: state.pos.filter((x) => x !== id), neg: state.neg.filter((x) => x !== id) };
        go(paramsOf(next));
      });
      return el("li", { className: "chip", dataset: { id: String(id) } },
        el("img", { src: `/api/images/${id}/thumb`, alt: "" }), name, remove);
    }));
  }
}

// --- results ------------------------------------------------------------------------------

function minimum(state) {
  if (state.min === "") return { value: state.text && !state.query ? -1 : PICTURE_MIN };
  const value = Number(state.min);
  if (!Number.isFinite(value) || value < -1 || value > 1) return { error: "The minimum similarity is a number from -1 to 1." };
  return { value };
}

function visible(state) {
  const { value } = minimum(state);
  return shown.filter((r) => r.similarity >= (value ?? -1));
}

// Where the close matches end: before the first result whose similarity drops sharply from a
// high one (-1: no such place).
function closeEnd(rows) {
  return rows.findIndex((r, i) => i > 0 && rows[i - 1].similarity >= CLOSE.above
    && rows[i - 1].similarity - r.similarity >= CLOSE.drop);
}

function render(state) {
  const limit = minimum(state);
  const rows = visible(state);
  const ids = rows.map((r) => r.image_id);
  for (const r of shown) paths.set(r.image_id, r.path);
  const cards = rows.map((r, i) => {
    const name = baseName(r.path);
    const toggle = (list, word, symbol) => {
      const pressed = state[list].includes(r.image_id);
      const button = el("button", { type: "button", "aria-pressed": String(pressed), "aria-label": `${word} like ${name}`,
        title: `Show ${word.toLowerCase()} images like this one`, dataset: { testid: list === "pos" ? "plus" : "minus" } },
      el("span", { "aria-hidden": "true" }, symbol), word);
      button.addEventListener("click", () => {
        const other = list === "pos" ? "neg" : "pos";
        const next = { ...state, [other]: state[other].filter((x) => x !== r.image_id) };
        next[list] = pressed ? state[list].filter((x) => x !== r.image_id) : [...state[list], r.image_id];
        go(paramsOf(next));
      });
      return button;
    };
    const item = card(r, { testid: "result", onOpen: () => openViewer(ids, i),
      actions: [toggle("pos", "More", "+"), toggle("neg", "Less", "−")] });
    if (state.pos.includes(r.image_id)) item.classList.add("positive");
    if (state.neg.includes(r.image_id)) item.classList.add("negative");
    return item;
  });
  const end = closeEnd(rows);
  if (end > 0) {
    const [high, low] = [rows[end - 1].similarity, rows[end].similarity];
    cards.splice(end, 0, el("li", { className: "close-end", dataset: { testid: "close-end" } },
      `Close matches end here: the images below are less alike (similarity ${low.toFixed(2)} and under, after ${high.toFixed(2)}).`));
  }
  $("results").replaceChildren(...cards);
  $("exports").hidden = !rows.length;
  const hidden = limit.error ? 0 : shown.length - rows.length;
  $("show-all").hidden = !hidden;
  $("show-all").textContent = `Show the ${plural(hidden, "less similar result")}`;
  offerList(ids);
  const took = lastTook === null ? "" : ` in ${Math.round(lastTook)} ms`;
  if (limit.error) say($("message"), limit.error, "error");
  else if (!shown.length) say($("message"), "No indexed image is similar to it.");
  else if (!rows.length) say($("message"), `No result reaches similarity ${limit.value}; the best is ${shown[0].similarity.toFixed(3)}: lower the minimum similarity to see it.`);
  else if (rows.length < shown.length) say($("message"), `${rows.length} of ${plural(shown.length, "result")} at similarity ${limit.value} or more${took}; lower the minimum similarity to see the others.`);
  else say($("message"), `${plural(shown.length, "result")}${took}.`);
}

const idle = () => ($("text-row").hidden
  ? "Choose, drop or paste an image, or give its URL, to find the images that look like it."
  : "Describe what you are looking for, or choose, drop or paste an image, or give its URL.");

// Called once /api/stats has answered: a prompt still showing is reworded (words or not); a
// message the person caused meanwhile (a click on Search with nothing chosen) stays.
export function setTextSearch(available) {
  const prompting = $("message").textContent === idle();
  $("text-row").hidden = !available;
  if (prompting) say($("message"), idle());
}

async function run(state, body, headers = {}) {
  const signal = request.start();
  shownKey = keyOf(state);
  busy(true);
  say($("message"), "Searching…", "busy");
  const shownQuery = showQuery(state.query, signal, state.text);
  try {
    const data = await api("/api/search", { method: "POST", body, headers, signal });
    if (data.query.kind === "upload" && (!state.query || state.query.upload !== data.query.upload)) {
      state = { ...state, query: { kind: "upload", upload: data.query.upload } };
      shownKey = keyOf(state);
      record(paramsOf(state), { push: true }); // a link, a reload and Back repeat this upload
      showQuery(state.query, signal, state.text);
    }
    shown = data.results;
    lastTook = data.took_ms;
    await shownQuery;
    render(state);
  } catch (error) {
    if (isAbort(error)) return;
    shown = [];
    shownKey = null;
    $("results").replaceChildren();
    $("exports").hidden = true;
    $("show-all").hidden = true;
    say($("message"), failure(error, state), "error");
  } finally {
    if (!signal.aborted) busy(false);
  }
}

// Why a search failed, in words for people.
function failure(error, state) {
  const upload = state.query && state.query.kind === "upload";
  if (upload && (error.status === 415 || error.status === 422)) {
    $("query").hidden = true; // nothing is searched for: no picture, no "Searching for"
    const name = uploadName ? `“${uploadName}”` : "The uploaded file";
    return `${name} cannot be read as an image: it may be damaged, or in a format imgsearch does not read. Try another file.`;
  }
  if (upload && error.status === 413) return `${uploadName ? `“${uploadName}”` : "The uploaded file"} is too large to search with.`;
  return error.message;
}

function jsonBody(state) {
  const body = { k: state.k, positive_ids: state.pos, negative_ids: state.neg };
  if (state.folder) body.folder = state.folder;
  if (state.text) body.text = state.text;
  return JSON.stringify({ ...body, ...(state.query || {}), kind: undefined });
}

// --- the view -----------------------------------------------------------------------------

export async function show(p) {
  const state = stateOf(p);
  $("k").value = state.k;
  $("min-score").value = state.min === "" ? String(minimum(state).value) : state.min;
  $("url").value = state.query && state.query.kind === "url" ? state.query.url : "";
  $("text").value = state.text;
  folders().then((all) => folderOptions($("search-folder"), all, state.folder)).catch(() => {});
  showFeedback(state);
  if (!state.query && !state.text) {
    request.cancel();
    busy(false);
    shown = [];
    shownKey = null;
    $("results").replaceChildren();
    $("exports").hidden = true;
    $("show-all").hidden = true;
    showQuery(null);
    say($("message"), idle());
    return;
  }
  if (keyOf(state) === shownKey) { // the same question: only the filter changed
    render(state);
    return;
  }
  run(state, jsonBody(state), { "content-type": "application/json" });
}

function searchFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    say($("message"), `${file.name || "That file"} is not an image.`, "error");
    return;
  }
  const state = { ...stateOf(params()), query: null, pos: [], neg: [], text: $("text").value.trim() };
  uploadName = file.name || "";
  const form = new FormData();
  form.append("file", file);
  form.append("k", state.k);
  if (state.text) form.append("text", state.text);
  if (state.folder) form.append("folder", state.folder);
  const preview = URL.createObjectURL(file);
  file.arrayBuffer().then((bytes) => crypto.subtle.digest("SHA-256", bytes)).then((digest) => {
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    previews.set(hex, preview);
  }).catch(() => {});
  $("query").hidden = false;
  $("query-image").hidden = false;
  $("query-image").src = preview;
  $("query-image").alt = file.name || "the uploaded image";
  $("query-text").textContent = file.name || "the uploaded image";
  $("query-words").textContent = state.text ? ` + “${state.text}”` : "";
  $("feedback").hidden = true;
  document.getElementById("browse-view").hidden = true; // the library under the form gives way
  run({ ...state, query: { kind: "upload", upload: "" } }, form);
}

function download(name, type, text) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const FIELDS = ["rank", "image_id", "path", "similarity", "distance", "width", "height", "mtime", "metadata"];

export function wire() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const state = stateOf(params());
    const url = $("url").value.trim();
    const text = $("text").value.trim();
    if (url) {
      go(paramsOf({ ...state, query: { kind: "url", url }, text, pos: [], neg: [] }));
    } else if ($("file").files[0]) {
      searchFile($("file").files[0]);
    } else if (text !== state.text) {
      // new words (or none now): alone, steering the picture already searched for, or nothing
      go(paramsOf({ ...state, text, pos: [], neg: [] }));
    } else if (state.query || state.text) {
      shownKey = null;
      show(params());
    } else {
      const ask = $("text-row").hidden ? "Choose" : "Describe it, or choose"; // words only with a CLIP model
      say($("message"), `${ask}, drop or paste an image, or give an image URL, first.`, "error");
      ($("text-row").hidden ? $("file") : $("text")).focus();
    }
  });
  $("file").addEventListener("change", (event) => searchFile(event.target.files[0]));
  $("k").addEventListener("change", () => {
    const k = Math.min(1000, Math.max(1, Number($("k").value) || 20));
    go(paramsOf({ ...stateOf(params()), k }));
  });
  $("search-folder").addEventListener("change", () => go(paramsOf({ ...stateOf(params()), folder: $("search-folder").value })));
  $("min-score").addEventListener("input", () => {
    const value = $("min-score").value.trim();
    const state = { ...stateOf(params()), min: value };
    if (!minimum(state).error) record(paramsOf(state)); // no new history entry per keystroke
    if (state.query && keyOf(state) === shownKey) render(state);
    else if (minimum(state).error) say($("message"), minimum(state).error, "error");
  });
  $("show-all").addEventListener("click", () => {
    const state = { ...stateOf(params()), min: "-1" };
    const before = visible(stateOf(params())).length;
    record(paramsOf(state));
    $("min-score").value = "-1";
    render(state);
    const first = document.querySelectorAll('[data-testid="result"] .open')[before];
    if (first) first.focus();
  });
  $("clear-feedback").addEventListener("click", () => go(paramsOf({ ...stateOf(params()), pos: [], neg: [] })));
  // A file dropped anywhere on the page, or pasted, is searched for (on the search view).
  const overlay = $("drop-overlay");
  const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  const toSearch = () => {
    if (document.getElementById("search-view").hidden) go(new URLSearchParams({ view: "search" }));
  };
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) overlay.hidden = true; // left the window
  });
  document.addEventListener("drop", (event) => {
    overlay.hidden = true;
    if (!carriesFiles(event)) return;
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (!file) return;
    toSearch();
    searchFile(file);
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((i) => i.type.startsWith("image/"));
    if (item) {
      toSearch();
      searchFile(item.getAsFile());
    }
  });
  $("query-image").addEventListener("error", () => { $("query-image").hidden = true; });
  $("export-json").addEventListener("click", () => {
    const rows = visible(stateOf(params())).map((r) => Object.fromEntries(FIELDS.map((f) => [f, r[f]])));
    download("imgsearch-results.json", "application/json", JSON.stringify(rows, null, 1));
  });
  $("export-csv").addEventListener("click", () => {
    const rows = visible(stateOf(params())).map((r) => FIELDS.map((f) => csvCell(r[f])).join(","));
    download("imgsearch-results.csv", "text/csv", [FIELDS.join(","), ...rows].join("\n"));
  });
}
