// Browse: the library a page at a time (more on scroll, or "Load more"), by folder and by the
// files' dates, newest or oldest first or by name, with how many images match. Also shown
// under the search form when nothing is searched for.
import { api, isAbort, Latest } from "./api.js";
import { $, card, folderOptions, plural, say } from "./dom.js";
import { folders } from "./folders.js";
import { go } from "./router.js";
import { offerList, openViewer } from "./viewer.js";

const PAGE = 24;
const ORDERS = {
  new: { sort: "date", order: "desc", words: "newest first" },
  old: { sort: "date", order: "asc", words: "oldest first" },
  name: { sort: "path", order: "asc", words: "by name" },
  "name-desc": { sort: "path", order: "desc", words: "by name, Z to A" },
};
const LEGACY = { date: "new", path: "name" }; // `sort=` of older links
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const request = new Latest();
let key = null;
let cursor = null;
let done = false;
let loading = false;
let total = null;
let ids = [];
let filter = null;

// A date field's day as seconds since 1970: its first moment, or (`end`) its last, local time.
function seconds(day, end = false) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + (end ? 1 : 0)).getTime() / 1000 - (end ? 0.001 : 0);
}

const dayWords = (day) => new Date(`${day}T12:00`).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });

function filterOf(p) {
  const sort = p.get("sort") || "";
  const day = (name) => (DAY.test(p.get(name) || "") ? p.get(name) : "");
  return { folder: p.get("folder") || "", sort: ORDERS[sort] ? sort : LEGACY[sort] || "new", since: day("since"), until: day("until") };
}

// What is shown, in words: "42 images in sub, from 1 Mar 2021, newest first".
function described(count) {
  const { folder, since, until } = filter;
  const where = folder ? ` in ${folder}` : "";
  const from = since ? ` from ${dayWords(since)}` : "";
  const to = until ? `${since ? " to" : " until"} ${dayWords(until)}` : "";
  return `${count}${where}${from}${to}, ${ORDERS[filter.sort].words}`;
}

function reset() {
  request.cancel();
  loading = false;
  cursor = null;
  done = false;
  total = null;
  ids = [];
  $("browse").replaceChildren();
  $("load-more").hidden = true;
}

function emptyText() {
  if (filter.since || filter.until) return "No image has a date in that range: choose other dates, or “Any date”.";
  if (filter.folder) return "No images in this folder.";
  return "The library is empty: no images have been added yet. Whoever runs imgsearch adds folders of images to it.";
}

async function loadMore() {
  if (done || loading) return;
  if (filter.since && filter.until && filter.since > filter.until) {
    say($("browse-message"), "The “From” date is after the “To” date: no image can be in between.", "error");
    return;
  }
  loading = true;
  const signal = request.start();
  const { sort, order } = ORDERS[filter.sort];
  const q = new URLSearchParams({ limit: PAGE, sort, order });
  if (filter.folder) q.set("folder", filter.folder);
  if (filter.since) q.set("since", seconds(filter.since));
  if (filter.until) q.set("until", seconds(filter.until, true));
  if (cursor) q.set("cursor", cursor);
  say($("browse-message"), ids.length ? "Loading more…" : "Loading…", "busy");
  $("browse").setAttribute("aria-busy", "true");
  try {
    const page = await api(`/api/images?${q}`, { signal });
    if (typeof page.total === "number") total = page.total;
    const start = ids.length;
    ids.push(...page.images.map((i) => i.id));
    $("browse").append(...page.images.map((image, i) =>
      card(image, { testid: "image", onOpen: () => openViewer(ids, start + i) })));
    offerList(ids);
    cursor = page.next_cursor;
    done = !cursor;
    $("load-more").hidden = done;
    const count = plural(total ?? ids.length, "image");
    if (!ids.length) say($("browse-message"), emptyText());
    else if (done) say($("browse-message"), `${described(count)}.`);
    else say($("browse-message"), `${described(count)}: the first ${ids.length.toLocaleString()} shown, more as you scroll.`);
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

// Show the library as `p` asks (`embedded`: under the search form, with the default filter).
export function show(p, { embedded = false } = {}) {
  filter = filterOf(p);
  document.getElementById("browse-heading").className = embedded ? "section-title" : "visually-hidden";
  $("sort").value = filter.sort;
  $("since").value = filter.since;
  $("until").value = filter.until;
  $("clear-dates").hidden = !filter.since && !filter.until;
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
  if ($("sort").value !== "new") p.set("sort", $("sort").value);
  if ($("since").value) p.set("since", $("since").value);
  if ($("until").value) p.set("until", $("until").value);
  go(p);
}

export function wire() {
  for (const field of ["folder", "sort", "since", "until"]) $(field).addEventListener("change", changed);
  $("clear-dates").addEventListener("click", () => {
    $("since").value = "";
    $("until").value = "";
    changed();
    $("since").focus();
  });
  document.getElementById("browse-form").addEventListener("submit", (event) => {
    event.preventDefault();
    changed();
  });
  $("load-more").addEventListener("click", loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && !document.getElementById("browse-view").hidden && key !== null) loadMore();
  }).observe($("sentinel"));
}
