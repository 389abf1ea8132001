// The map: every image at its place in a 2-D projection of the vectors (`imgsearch map`);
// similar images lie close. Points snap to a grid of cells at least CELL px wide, so that no
// two overlap and each is a target big enough to touch; when there are more images than cells,
// an even sample is shown. Each point opens the viewer.
import { api } from "./api.js";
import { $, baseName, el, plural, say } from "./dom.js";
import { similarTo } from "./search.js";
import { openViewer } from "./viewer.js";

const CELL = 30; // px: a point's side, gaps included
let points = null;
let drawnColumns = 0;

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

function draw() {
  const box = $("map");
  const columns = Math.max(4, Math.floor(box.clientWidth / CELL));
  if (columns === drawnColumns) return;
  drawnColumns = columns;
  const placed = layout(points, columns);
  const ids = placed.map((p) => p.point.id);
  const side = `${100 / columns}%`;
  box.replaceChildren(...placed.map(({ point, cell }, i) => {
    const button = el("button", { type: "button", title: point.path, "aria-label": `Open ${baseName(point.path)}`, dataset: { testid: "map-point" } },
      el("img", { src: `${point.thumb_url}?size=128`, alt: "", loading: "lazy" }));
    Object.assign(button.style, { left: `${cell[0] * 100 / columns}%`, top: `${cell[1] * 100 / columns}%`, width: side, height: side });
    button.addEventListener("click", () => openViewer(ids, i, similarTo));
    return button;
  }));
  const shown = placed.length < points.length ? `${placed.length} of ${plural(points.length, "image")} shown` : plural(points.length, "image");
  say($("map-message"), `${shown}, placed by similarity (close means alike).`);
}

export async function show() {
  if (points) {
    draw();
    return;
  }
  say($("map-message"), "Loading the map…", "busy");
  try {
    points = (await api("/api/map")).points;
    drawnColumns = 0;
    draw();
  } catch (error) {
    say($("map-message"), error.message, "error");
  }
}

export function wire() {
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => { if (points && !document.getElementById("map-view").hidden) draw(); }, 200);
  });
}
