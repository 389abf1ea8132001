// Clusters: the latest K-Means run, each cluster with the images nearest its centre; choose
// one to see all its images.
import { api, isAbort, Latest } from "./api.js";
import { $, card, el, plural, say } from "./dom.js";
import { go } from "./router.js";
import { similarTo } from "./search.js";
import { openViewer } from "./viewer.js";

const request = new Latest();
let summary = null; // the latest run, fetched once
let shownCluster = null;

async function loadSummary() {
  if (summary) return summary;
  say($("clusters-message"), "Loading the clusters…", "busy");
  summary = await api("/api/clusters");
  $("clusters").replaceChildren(...summary.clusters_found.map((c) => {
    const button = el("button", { type: "button", "aria-pressed": "false", dataset: { testid: "cluster", cluster: String(c.cluster) } },
      el("span", {}, `Cluster ${c.cluster}: ${plural(c.size, "image")}`),
      el("span", { className: "thumbs" }, ...c.nearest.map((m) => el("img", { src: `${m.thumb_url}?size=128`, alt: "", loading: "lazy" }))));
    button.addEventListener("click", () => go(new URLSearchParams({ view: "clusters", cluster: c.cluster })));
    return el("li", {}, button);
  }));
  say($("clusters-message"), `${plural(summary.clusters, "cluster")} of ${plural(summary.images, "image")} (${summary.method}).`);
  return summary;
}

async function openCluster(cluster) {
  shownCluster = cluster;
  for (const b of document.querySelectorAll('[data-testid="cluster"]')) {
    b.setAttribute("aria-pressed", String(b.dataset.cluster === String(cluster)));
  }
  const title = $("cluster-title");
  const grid = $("cluster-images");
  if (cluster === null) {
    title.hidden = true;
    grid.replaceChildren();
    return;
  }
  const found = summary.clusters_found.find((c) => c.cluster === cluster);
  title.hidden = false;
  title.textContent = found ? `Cluster ${cluster}: ${plural(found.size, "image")}` : `Cluster ${cluster}`;
  const signal = request.start();
  grid.setAttribute("aria-busy", "true");
  try {
    const data = await api(`/api/clusters/${cluster}/images?limit=500`, { signal });
    const ids = data.images.map((i) => i.id);
    grid.replaceChildren(...data.images.map((image, i) =>
      card(image, { testid: "cluster-image", onOpen: () => openViewer(ids, i, similarTo) })));
    if (!data.images.length) say($("clusters-message"), `Cluster ${cluster} has no images.`);
  } catch (error) {
    if (!isAbort(error)) say($("clusters-message"), error.message, "error");
  } finally {
    if (!signal.aborted) grid.setAttribute("aria-busy", "false");
  }
}

export async function show(p) {
  const raw = p.get("cluster");
  const cluster = raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
  try {
    await loadSummary();
  } catch (error) {
    if (!isAbort(error)) say($("clusters-message"), error.message, "error");
    return;
  }
  if (cluster !== shownCluster) openCluster(cluster);
}

export function wire() {}
