// imgsearch's page: five views (search, browse, duplicates, clusters, map) over the JSON API,
// each rendered from the URL (js/router.js), and a viewer for one image (js/viewer.js). With
// nothing searched for, the search view shows the library under its form.
import { api } from "./js/api.js";
import * as browse from "./js/browse.js";
import * as clusters from "./js/clusters.js";
import { $, plural } from "./js/dom.js";
import * as duplicates from "./js/duplicates.js";
import * as make from "./js/make.js";
import * as map from "./js/map.js";
import { go, register, route } from "./js/router.js";
import * as search from "./js/search.js";
import * as token from "./js/token.js";

const home = {
  show(p) {
    search.show(p);
    const idle = search.isIdle(p);
    document.getElementById("browse-view").hidden = !idle;
    if (idle) browse.show(new URLSearchParams(), { embedded: true });
  },
  wire: search.wire,
};
for (const [name, view] of Object.entries({ search: home, browse, duplicates, clusters, map })) {
  register(name, view);
  view.wire();
}
token.wire();
make.wire();
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
