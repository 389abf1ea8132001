// The page's state is its URL: `?view=browse&folder=2024`, `?view=search&id=42&pos=7`,
// `&image=42` while the viewer shows an image. Every view renders itself from the URL, so a
// link, a reload and Back/Forward show the same.

const views = new Map();
const after = []; // called after each view renders (the viewer follows `image=`)

export const params = () => new URLSearchParams(location.search);

export function register(name, view) {
  views.set(name, view);
}

export function afterRoute(callback) {
  after.push(callback);
}

// Go to a new state (a new history entry, unless `push` is false) and render it.
export function go(next, { push = true } = {}) {
  const query = `?${next}`;
  if (query !== location.search) history[push ? "pushState" : "replaceState"](null, "", query);
  route();
}

// Record in the URL a state the page already shows (no rendering); `state` is kept with the
// history entry (across a reload too).
export function record(next, { push = false, state = null } = {}) {
  const query = `?${next}`;
  if (query !== location.search || state !== null) history[push ? "pushState" : "replaceState"](state, "", query);
}

// The view a URL shows: its `view`; without one, search (whose page shows the library when
// nothing is searched for).
export function viewOf(p) {
  return views.has(p.get("view")) ? p.get("view") : "search";
}

export function route() {
  const p = params();
  const name = viewOf(p);
  for (const key of views.keys()) document.getElementById(`${key}-view`).hidden = key !== name;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  views.get(name).show(p);
  for (const callback of after) callback(p);
}

window.addEventListener("popstate", route);
