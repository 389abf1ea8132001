// The map: every image at its place in a 2-D projection of the vectors; alike images lie
// close. Points snap to a grid of cells CELL px wide, so that no two overlap and each is a
// target big enough to touch; when there are more images than cells, an even sample is shown.
// Zooming in makes the map larger than the screen (scroll or swipe to move around) with more
// cells, so more images show, then all. Each point opens the viewer. None yet: a button makes it.
import { api, isAbort } from "./api.js";
import { $, baseName, el, plural, say } from "./dom.js";
import { onMade, showMake } from "./make.js";
import { params } from "./router.js";
import { offerList, openViewer } from "./viewer.js";

const CELL = 30; // px: a point's side, gaps included
const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8, 12, 16];
let points = null;
let zoom = 0; // index in ZOOMS
let drawn = ""; // the columns and zoom drawn

function layout(all, columns) {
  const cells = columns * columns;
  const step = all.length > cells ? all.length / cells : 1;
  const chosen = [];
  for (let i = 0; i < Math.min(all.length, cells); i += 1) chosen.push(all[Math.floor(i * step)]);
  const taken = new Set();
  const placed = [];
  for (const p of chosen) {
    const want = [Math.min(columns - 1, Math.floor(p.x * columns)), Math.min(columns - 1, Math.floor((1 - p.y) * columns))];
    let best = null;
    for (let r = 0; best === null && r < columns; r += 1) { // the nearest free cell, ring by ring
      for (let dx = -r; dx <= r && best === null; dx += 1) {
        for (let dy = -r; dy <= r; dy += 1) {
          if (Math.max(Math.abs(dx), Math.abs(dy)) !== r) continue;
          const [cx, cy] = [want[0] + dx, want[1] + dy];
          if (cx < 0 || cy < 0 || cx >= columns || cy >= columns || taken.has(cx * columns + cy)) continue;
          best = [cx, cy];
          break;
        }
      }
    }
    taken.add(best[0] * columns + best[1]);
    placed.push({ point: p, cell: best });
  }
  return placed;
}

const columnsAt = (level) => Math.max(4, Math.floor(($("map-box").clientWidth * ZOOMS[level]) / CELL));
// The first zoom that shows every image, and the deepest worth having (every image with room).
const allAt = () => ZOOMS.findIndex((_, level) => columnsAt(level) ** 2 >= points.length);
const deepest = () => {
  const roomy = ZOOMS.findIndex((_, level) => columnsAt(level) ** 2 >= 4 * points.length);
  return Math.max(1, roomy < 0 ? ZOOMS.length - 1 : roomy);
};

function draw() {
  const box = $("map-box");
  box.hidden = false; // its width sets the columns
  const columns = columnsAt(zoom);
  if (`${columns}/${zoom}` === drawn) return;
  drawn = `${columns}/${zoom}`;
  const canvas = $("map");
  canvas.style.width = `${ZOOMS[zoom] * 100}%`;
  const placed = layout(points, columns);
  const ids = placed.map((p) => p.point.id);
  const side = `${100 / columns}%`;
  canvas.replaceChildren(...placed.map(({ point, cell }, i) => {
    const button = el("button", { type: "button", title: point.path, "aria-label": `Open ${baseName(point.path)}`, dataset: { testid: "map-point", id: String(point.id) } },
      el("img", { src: `${point.thumb_url}?size=128`, alt: "", loading: "lazy" }));
    Object.assign(button.style, { left: `${cell[0] * 100 / columns}%`, top: `${cell[1] * 100 / columns}%`, width: side, height: side });
    button.addEventListener("click", () => openViewer(ids, i));
    return button;
  }));
  offerList(ids);
  $("zoom").hidden = false;
  $("zoom-level").textContent = `${ZOOMS[zoom]}×`;
  $("zoom-out").disabled = zoom === 0;
  $("zoom-in").disabled = zoom >= deepest();
  const all = allAt();
  $("zoom-all").hidden = placed.length === points.length || all < 0;
  const shown = placed.length < points.length
    ? `${placed.length} of ${plural(points.length, "image")} shown: zoom in to see more.`
    : `${plural(points.length, "image")}${zoom ? " (scroll to move around)" : ""}.`;
  say($("map-message"), `Alike images lie close together. ${shown}`);
}

// Zoom to `level`, keeping the middle of what is seen in the middle.
function zoomTo(level) {
  const box = $("map-box");
  const middle = [(box.scrollLeft + box.clientWidth / 2) / box.scrollWidth, (box.scrollTop + box.clientHeight / 2) / box.scrollHeight];
  zoom = Math.max(0, Math.min(deepest(), level));
  draw();
  box.scrollLeft = middle[0] * box.scrollWidth - box.clientWidth / 2;
  box.scrollTop = middle[1] * box.scrollHeight - box.clientHeight / 2;
}

function noneYet() {
  $("map-box").hidden = true;
  $("zoom").hidden = true;
  say($("map-message"), "");
  showMake($("map-make"), "There is no map yet. The map places every image by how it looks: alike images lie close "
    + "together. Making it (with the clusters) takes from a few seconds to a few minutes, by the size of the library.");
}

export async function show() {
  $("map-make").hidden = true;
  if (points) {
    draw();
    return;
  }
  say($("map-message"), "Loading the map…", "busy");
  try {
    points = (await api("/api/map")).points;
    drawn = "";
    draw();
  } catch (error) {
    if (isAbort(error)) return;
    if (error.status === 404) noneYet();
    else say($("map-message"), error.message, "error");
  }
}

export function wire() {
  let pending = null;
  const visible = () => points && !document.getElementById("map-view").hidden;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => { if (visible()) draw(); }, 200);
  });
  $("zoom-in").addEventListener("click", () => zoomTo(zoom + 1));
  $("zoom-out").addEventListener("click", () => zoomTo(zoom - 1));
  $("zoom-all").addEventListener("click", () => zoomTo(Math.max(zoom, allAt())));
  onMade(() => {
    points = null;
    if (params().get("view") === "map") show();
  });
}
