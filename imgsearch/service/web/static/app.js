// imgsearch's page: five views (search, browse, duplicates, clusters, map) over the JSON API,
// each rendered from the URL (js/router.js), and a viewer for one image (js/viewer.js).
import { api } from "./js/api.js";
import * as browse from "./js/browse.js";
import * as clusters from "./js/clusters.js";
import { $, plural } from "./js/dom.js";
import * as duplicates from "./js/duplicates.js";
import * as map from "./js/map.js";
import { go, register, route } from "./js/router.js";
import * as search from "./js/search.js";

for (const [name, view] of Object.entries({ search, browse, duplicates, clusters, map })) {
  register(name, view);
  view.wire();
}
for (const link of document.querySelectorAll("nav a[data-view]")) {
  link.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return; // a new tab: the plain link
    event.preventDefault();
    go(new URLSearchParams({ view: link.dataset.view }));
    document.getElementById("main").focus({ preventScroll: true });
  });
}
api("/api/stats").then((s) => {
  $("stats").textContent = `${plural(s.images, "image")} · ${s.model}`;
  search.setTextSearch(s.text_search);
}).catch(() => {});
route();
