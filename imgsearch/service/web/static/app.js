// imgsearch web page: search (upload, drop, paste, URL, click), feedback, URL state, export, browse.
"use strict";
const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const state = { kind: null, id: null, url: null, file: null, k: 20, min: -1, pos: [], neg: [] };
let shown = [];

function fromLocation() {
  const p = new URLSearchParams(location.search);
  state.k = Number(p.get("k") || 20);
  state.min = Number(p.get("min") || -1);
  state.pos = (p.get("pos") || "").split(",").filter(Boolean).map(Number);
  state.neg = (p.get("neg") || "").split(",").filter(Boolean).map(Number);
  state.id = p.get("id") ? Number(p.get("id")) : null;
  state.url = p.get("url");
  state.kind = state.id ? "id" : state.url ? "url" : null;
  $("k").value = state.k;
  $("min-score").value = state.min;
  $("url").value = state.url || "";
}

function toLocation() {
  const p = new URLSearchParams();
  if (state.kind === "id") p.set("id", state.id);
  if (state.kind === "url") p.set("url", state.url);
  p.set("k", state.k);
  if (state.min > -1) p.set("min", state.min);
  if (state.pos.length) p.set("pos", state.pos.join(","));
  if (state.neg.length) p.set("neg", state.neg.join(","));
  const next = `?${p}`;
  if (next !== location.search) history.pushState(null, "", next);
}

async function search(push = true) {
  if (!state.kind) return;
  state.k = Math.min(1000, Math.max(1, Number($("k").value) || 20));
  if (push) toLocation();
  let response;
  if (state.kind === "upload") {
    const form = new FormData();
    form.append("file", state.file);
    form.append("k", state.k);
    if (state.pos.length) form.append("positive_ids", state.pos.join(","));
    if (state.neg.length) form.append("negative_ids", state.neg.join(","));
    response = await fetch("/api/search", { method: "POST", body: form });
  } else {
    const body = { k: state.k, positive_ids: state.pos, negative_ids: state.neg };
    if (state.kind === "id") body.image_id = state.id; else body.url = state.url;
    response = await fetch("/api/search", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  }
  const data = await response.json();
  $("message").textContent = response.ok ? "" : data.detail;
  shown = response.ok ? data.results : [];
  // Back and Forward restore these results, uploads included (their image is not in the URL).
  history.replaceState({ shown, pos: state.pos, neg: state.neg }, "", location.href);
  render();
}

function card(item, withFeedback) {
  // a search hit (image_id, similarity) or an image of the collection (id)
  const id = item.image_id ?? item.id;
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.testid = withFeedback ? "result" : "image";
  div.dataset.id = id;
  if (state.pos.includes(id)) div.classList.add("positive");
  if (state.neg.includes(id)) div.classList.add("negative");
  const img = document.createElement("img");
  img.src = item.thumb_url;
  img.alt = item.path;
  img.loading = "lazy";
  img.addEventListener("click", () => {
    Object.assign(state, { kind: "id", id, url: null, pos: [], neg: [] });
    showView("search");
    search();
  });
  div.append(img);
  if (item.similarity !== undefined) {
    const score = document.createElement("div");
    score.className = "score";
    score.dataset.testid = "score";
    score.textContent = item.similarity.toFixed(3);
    div.append(score);
  }
  const path = document.createElement("div");
  path.className = "path";
  path.textContent = item.path;
  div.append(path);
  if (withFeedback) {
    for (const [label, list, other] of [["+", "pos", "neg"], ["−", "neg", "pos"]]) {
      const button = document.createElement("button");
      button.textContent = label;
      button.dataset.testid = list === "pos" ? "plus" : "minus";
      button.addEventListener("click", () => {
        state[other] = state[other].filter((x) => x !== id);
        state[list] = state[list].includes(id)
          ? state[list].filter((x) => x !== id) : [...state[list], id];
        search();
      });
      div.append(button);
    }
  }
  return div;
}

function render() {
  const visible = shown.filter((r) => r.similarity >= state.min);
  $("results").replaceChildren(...visible.map((r) => card(r, true)));
  $("feedback").textContent = state.pos.length || state.neg.length
    ? `more like ${state.pos.join(", ") || "-"}; less like ${state.neg.join(", ") || "-"}` : "";
}

function download(name, type, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
}

function exportRows() { return shown.filter((r) => r.similarity >= state.min); }

function setFile(file) {
  if (!file) return;
  Object.assign(state, { kind: "upload", file, id: null, url: null, pos: [], neg: [] });
  search();
}

// --- browse -------------------------------------------------------------------------------
const browse = { cursor: null, done: false, loading: false };

async function loadMore(reset = false) {
  if (reset) { Object.assign(browse, { cursor: null, done: false }); $("browse").replaceChildren(); }
  if (browse.done || browse.loading) return;
  browse.loading = true;
  const p = new URLSearchParams({ limit: 24, sort: $("sort").value });
  if ($("folder").value) p.set("folder", $("folder").value);
  if ($("sort").value === "date") p.set("order", "desc");
  if (browse.cursor) p.set("cursor", browse.cursor);
  const data = await (await fetch(`/api/images?${p}`)).json();
  $("browse").append(...(data.images || []).map((i) => card(i, false)));
  browse.cursor = data.next_cursor;
  browse.done = !data.next_cursor;
  browse.loading = false;
}

const VIEWS = ["search", "browse", "duplicates", "clusters", "map"];

function showView(view) {
  for (const v of VIEWS) document.getElementById(`${v}-view`).hidden = v !== view;
  if (view === "browse" && !$("browse").children.length) loadMore(true);
  if (view === "clusters") loadClusters();
  if (view === "map") loadMap();
}

// --- duplicates, clusters, map --------------------------------------------------------------
async function loadDuplicates() {
  const p = new URLSearchParams({ threshold: $("threshold").value, limit: 50 });
  const response = await fetch(`/api/duplicates?${p}`);
  const data = await response.json();
  $("duplicates-message").textContent = response.ok ? `${data.total} groups` : data.detail;
  $("duplicates").replaceChildren(...(data.groups || []).map(group));
}

function group(g) {
  const div = document.createElement("div");
  div.className = "group";
  div.dataset.testid = "dup-group";
  div.dataset.id = g.id;
  const row = document.createElement("div");
  row.className = "row";
  for (const m of g.members) {
    const c = card({ image_id: m.id, path: m.path, similarity: m.similarity,
                     thumb_url: `/api/images/${m.id}/thumb` }, false);
    if (m.id === g.keep) c.classList.add("keep");
    row.append(c);
  }
  const ids = g.members.map((m) => m.id);
  const keep = document.createElement("button");
  keep.textContent = "Keep the marked one";
  keep.dataset.testid = "dup-keep";
  keep.onclick = () => decide(g.id, { decision: "keep", image_ids: ids, keep: g.keep });
  const not = document.createElement("button");
  not.textContent = "Not duplicates";
  not.dataset.testid = "dup-not";
  not.onclick = () => decide(g.id, { decision: "not-duplicates", image_ids: ids });
  div.append(row, keep, not);
  return div;
}

async function decide(groupId, body) {
  const response = await fetch(`/api/duplicates/${groupId}/decision`, {
    method: "POST", body: JSON.stringify(body),
    headers: { "content-type": "application/json", authorization: `Bearer ${$("token").value}` } });
  if (!response.ok) { $("duplicates-message").textContent = (await response.json()).detail; return; }
  loadDuplicates();
}

async function loadClusters() {
  const response = await fetch("/api/clusters");
  const data = await response.json();
  $("clusters-message").textContent = response.ok
    ? `${data.clusters} clusters of ${data.images} images (${data.method})` : data.detail;
  $("clusters").replaceChildren(...(data.clusters_found || []).map((c) => {
    const div = document.createElement("div");
    div.className = "cluster";
    div.dataset.testid = "cluster";
    div.dataset.cluster = c.cluster;
    div.append(`#${c.cluster}: ${c.size} images`, ...c.nearest.map((m) => {
      const img = document.createElement("img");
      img.src = `/api/images/${m.id}/thumb?size=128`;
      img.alt = m.path;
      return img;
    }));
    div.onclick = () => openCluster(c.cluster);
    return div;
  }));
}

async function openCluster(cluster) {
  const data = await (await fetch(`/api/clusters/${cluster}/images?limit=200`)).json();
  $("cluster-title").textContent = `cluster ${cluster}`;
  $("cluster-images").replaceChildren(...data.images.map((i) => card(i, false)));
}

async function loadMap() {
  const response = await fetch("/api/map");
  const data = await response.json();
  $("map-message").textContent = response.ok ? `${data.points.length} images` : data.detail;
  $("map").replaceChildren(...(data.points || []).map((p) => {
    const img = document.createElement("img");
    img.src = `${p.thumb_url}?size=128`;
    img.title = p.path;
    img.dataset.testid = "map-point";
    img.style.left = `${2 + p.x * 96}%`;
    img.style.top = `${2 + (1 - p.y) * 96}%`;
    img.onclick = () => {
      Object.assign(state, { kind: "id", id: p.id, url: null, pos: [], neg: [] });
      showView("search");
      search();
    };
    return img;
  }));
}

// --- wiring -------------------------------------------------------------------------------
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = $("url").value.trim();
  if (url) Object.assign(state, { kind: "url", url, id: null, pos: [], neg: [] });
  search();
});
$("file").addEventListener("change", (e) => setFile(e.target.files[0]));
$("min-score").addEventListener("input", () => { state.min = Number($("min-score").value); render(); toLocation(); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); setFile(e.dataTransfer.files[0]); });
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) setFile(item.getAsFile());
});
$("export-json").addEventListener("click", () =>
  download("imgsearch-results.json", "application/json", JSON.stringify(exportRows(), null, 1)));
$("export-csv").addEventListener("click", () => download("imgsearch-results.csv", "text/csv",
  ["image_id,path,similarity", ...exportRows().map((r) => `${r.image_id},"${r.path.replaceAll('"', '""')}",${r.similarity}`)].join("\n")));
document.querySelectorAll("nav a").forEach((a) => a.addEventListener("click", (e) => {
  e.preventDefault(); showView(a.dataset.view);
}));
$("folder").addEventListener("change", () => loadMore(true));
document.getElementById("duplicates-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("imgsearch-token", $("token").value);
  loadDuplicates();
});
$("token").value = sessionStorage.getItem("imgsearch-token") || "";
$("sort").addEventListener("change", () => loadMore(true));
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && !document.getElementById("browse-view").hidden) loadMore();
}).observe($("sentinel"));
window.addEventListener("popstate", (event) => {
  fromLocation();
  if (event.state && event.state.shown) {
    Object.assign(state, { pos: event.state.pos, neg: event.state.neg });
    shown = event.state.shown;
    render();
  } else {
    search(false);
  }
});

fetch("/api/stats").then((r) => r.json()).then((s) => {
  $("stats").textContent = `${s.images.toLocaleString()} images · ${s.model}`;
});
fromLocation();
search(false);
