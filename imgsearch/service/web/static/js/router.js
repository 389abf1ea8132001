// The page's state is its URL: `?view=browse&folder=2024`, `?view=search&id=42&pos=7`, ...
// Every view renders itself from the URL, so a link, a reload and Back/Forward show the same.

const views = new Map();

export const params = () => new URLSearchParams(location.search);

export function register(name, view) {
  views.set(name, view);
}

// Go to a new state (a new history entry, unless `push` is false) and render it.
export function go(next, { push = true } = {}) {
  const query = `?${next}`;
  if (query !== location.search) history[push ? "pushState" : "replaceState"](null, "", query);
  route();
}

// Record in the URL a state the page already shows (no rendering).
export function record(next, { push = false } = {}) {
  const query = `?${next}`;
  if (query !== location.search) history[push ? "pushState" : "replaceState"](null, "", query);
}

export function route() {
  const p = params();
  const name = views.has(p.get("view")) ? p.get("view") : "search";
  for (const key of views.keys()) document.getElementById(`${key}-view`).hidden = key !== name;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  views.get(name).show(p);
}

window.addEventListener("popstate", route);
