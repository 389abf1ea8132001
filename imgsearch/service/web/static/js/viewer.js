// The viewer: one image large, with its size, date, folder and metadata, "More like this",
// the original file, and ← → through the list it was opened from (Esc closes).
import { api, isAbort, Latest } from "./api.js";
import { $, baseName, el, folderOf } from "./dom.js";

const dialog = document.querySelector("dialog.viewer");
const loading = new Latest();
let ids = [];
let position = 0;
let similar = null;
let opener = null;

const isUrl = (path) => /^https?:\/\//i.test(path);

function detail(term, value) {
  return value === null || value === undefined || value === "" ? [] : [el("dt", {}, term), el("dd", {}, String(value))];
}

async function show() {
  const id = ids[position];
  $("viewer-position").textContent = ids.length > 1 ? `${position + 1} of ${ids.length}` : "";
  $("viewer-prev").disabled = position === 0;
  $("viewer-next").disabled = position >= ids.length - 1;
  $("viewer-title").textContent = `Image ${id}`;
  $("viewer-details").replaceChildren();
  const image = $("viewer-image");
  image.src = `/api/images/${id}/thumb?size=1024`;
  image.alt = "";
  const signal = loading.start();
  try {
    const info = await api(`/api/images/${id}`, { signal });
    const name = baseName(info.path);
    $("viewer-title").textContent = name;
    image.alt = name;
    if (!isUrl(info.path)) {
      image.src = `/api/images/${id}/file`;
      image.onerror = () => { image.onerror = null; image.src = `/api/images/${id}/thumb?size=1024`; };
    }
    const original = $("viewer-original");
    original.href = isUrl(info.path) ? info.path : `/api/images/${id}/file`;
    const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : null);
    $("viewer-details").replaceChildren(
      ...detail("Folder", isUrl(info.path) ? null : folderOf(info.path)),
      ...detail("Size", info.width && info.height ? `${info.width} × ${info.height} px` : null),
      ...detail("File", `${info.byte_size.toLocaleString()} bytes${info.format ? `, ${info.format}` : ""}`),
      ...detail("Modified", when(info.mtime)),
      ...detail("Indexed", when(info.indexed_at)),
      ...detail("Id", info.id),
      ...Object.entries(info.metadata || {}).flatMap(([key, value]) => detail(key, value)),
    );
  } catch (error) {
    if (isAbort(error)) return;
    $("viewer-details").replaceChildren(...detail("Error", error.message));
  }
}

function step(delta) {
  const next = position + delta;
  if (next < 0 || next >= ids.length) return;
  position = next;
  show();
}

// Open the viewer on `list[index]` (image ids); `onSimilar(id)` is "More like this".
export function openViewer(list, index, onSimilar) {
  ids = list;
  position = index;
  similar = onSimilar;
  opener = document.activeElement;
  if (!dialog.open) dialog.showModal();
  show();
}

dialog.addEventListener("keydown", (event) => {
  if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
});
dialog.addEventListener("close", () => {
  loading.cancel();
  if (opener && opener.isConnected) opener.focus();
});
dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
$("viewer-close").addEventListener("click", () => dialog.close());
$("viewer-prev").addEventListener("click", () => step(-1));
$("viewer-next").addEventListener("click", () => step(1));
$("viewer-similar").addEventListener("click", () => {
  const id = ids[position];
  dialog.close();
  if (similar) similar(id);
});
