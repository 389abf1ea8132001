// Clusters: the latest K-Means run, each cluster with the images nearest its centre; choose
// one to see all its images. None yet: a button makes them (and the map).
import { api, isAbort, Latest } from "./api.js";
import { $, card, el, plural, say } from "./dom.js";
import { onMade, showMake } from "./make.js";
import { go, params, route } from "./router.js";
import { offerList, openViewer } from "./viewer.js";

const request = new Latest();
let summary = null; // the latest run, fetched once
let shownCluster = null;
let remaking = false; // the person asked to make them again

function tile(c) {
  const button = el("button", { type: "button", "aria-pressed": "false", dataset: { testid: "cluster", cluster: String(c.cluster) } },
    el("span", {}, `Cluster ${c.cluster}: ${plural(c.size, "image")}`),
    el("span", { className: "thumbs" }, ...c.nearest.map((m) => el("img", { src: m.thumb_url, alt: "", width: 64, height: 64 }))));
  button.addEventListener("click", () => go(new URLSearchParams({ view: "clusters", cluster: c.cluster })));
  return el("li", {}, button);
}

async function loadSummary() {
  if (summary) return summary;
  say($("clusters-message"), "Loading the clusters…", "busy");
  const found = await api("/api/clusters");
  summary = found;
  $("clusters").replaceChildren(...summary.clusters_found.map(tile));
  say($("clusters-message"), `${plural(summary.clusters, "cluster")} of ${plural(summary.images, "image")}: alike images together.`);
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
      card(image, { testid: "cluster-image", onOpen: () => openViewer(ids, i) })));
    offerList(ids);
    if (!data.images.length) say($("clusters-message"), `Cluster ${cluster} has no images.`);
  } catch (error) {
    if (!isAbort(error)) say($("clusters-message"), error.message, "error");
  } finally {
    if (!signal.aborted) grid.setAttribute("aria-busy", "false");
  }
}

function noneYet() {
  $("clusters").replaceChildren();
  $("cluster-title").hidden = true;
  $("cluster-images").replaceChildren();
  $("remake").hidden = true;
  say($("clusters-message"), "");
  showMake($("clusters-make"), "There are no clusters yet. Clusters put images that look alike together; "
    + "making them takes from a few seconds to a few minutes, by the size of the library.");
}

export async function show(p) {
  const raw = p.get("cluster");
  const cluster = raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
  try {
    await loadSummary();
  } catch (error) {
    if (isAbort(error)) return;
    if (error.status === 404) noneYet();
    else say($("clusters-message"), error.message, "error");
    return;
  }
  $("remake").hidden = remaking;
  $("clusters-make").hidden = !remaking;
  if (cluster !== shownCluster) openCluster(cluster);
}

export function wire() {
  $("remake").addEventListener("click", () => {
    remaking = true;
    $("remake").hidden = true;
    showMake($("clusters-make"), "Make the clusters and the map again, for instance after adding images. "
      + "The ones shown now stay until the new ones are ready.");
    $("make").focus();
  });
  onMade(() => {
    summary = null;
    shownCluster = null;
    remaking = false;
    if (params().get("view") === "clusters") route();
  });
}
