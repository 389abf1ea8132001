// Browse: the collection a page at a time (more on scroll, or "Load more"), by folder, by
// name or newest first.
import { api, isAbort, Latest } from "./api.js";
import { $, card, folderOptions, plural, say } from "./dom.js";
import { folders } from "./folders.js";
import { go } from "./router.js";
import { similarTo } from "./search.js";
import { openViewer } from "./viewer.js";

const PAGE = 24;
const request = new Latest();
let key = null;
let cursor = null;
let done = false;
let loading = false;
let ids = [];
let filter = { folder: "", sort: "path" };

function reset() {
  request.cancel();
  loading = false;
  cursor = null;
  done = false;
  ids = [];
  $("browse").replaceChildren();
  $("load-more").hidden = true;
}

async function loadMore() {
  if (done || loading) return;
  loading = true;
  const signal = request.start();
  const { folder, sort } = filter;
  const q = new URLSearchParams({ limit: PAGE, sort });
  if (folder) q.set("folder", folder);
  if (sort === "date") q.set("order", "desc");
  if (cursor) q.set("cursor", cursor);
  say($("browse-message"), ids.length ? "Loading more…" : "Loading…", "busy");
  $("browse").setAttribute("aria-busy", "true");
  try {
    const page = await api(`/api/images?${q}`, { signal });
    const start = ids.length;
    ids.push(...page.images.map((i) => i.id));
    $("browse").append(...page.images.map((image, i) =>
      card(image, { testid: "image", onOpen: () => openViewer(ids, start + i, similarTo) })));
    cursor = page.next_cursor;
    done = !cursor;
    $("load-more").hidden = done;
    if (!ids.length) {
      say($("browse-message"), folder ? "No images in this folder." : "No images are indexed yet: `imgsearch ingest FOLDER` adds some.");
    } else {
      say($("browse-message"), done ? `${plural(ids.length, "image")}.` : `${plural(ids.length, "image")} so far; more below.`);
    }
  } catch (error) {
    if (isAbort(error)) return;
    say($("browse-message"), error.message, "error");
  } finally {
    if (!signal.aborted) {
      loading = false;
      $("browse").setAttribute("aria-busy", "false");
    }
  }
}

export function show(p) {
  filter = { folder: p.get("folder") || "", sort: p.get("sort") === "date" ? "date" : "path" };
  $("sort").value = filter.sort;
  folders().then((all) => folderOptions($("folder"), all, filter.folder)).catch((error) => {
    say($("browse-message"), error.message, "error");
  });
  const next = JSON.stringify(filter);
  if (next === key) return;
  key = next;
  reset();
  loadMore();
}

function changed() {
  const p = new URLSearchParams({ view: "browse" });
  if ($("folder").value) p.set("folder", $("folder").value);
  if ($("sort").value === "date") p.set("sort", "date");
  go(p);
}

export function wire() {
  $("folder").addEventListener("change", changed);
  $("sort").addEventListener("change", changed);
  document.getElementById("browse-form").addEventListener("submit", (event) => {
    event.preventDefault();
    changed();
  });
  $("load-more").addEventListener("click", loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !document.getElementById("browse-view").hidden && key !== null) loadMore();
  }).observe($("sentinel"));
}
