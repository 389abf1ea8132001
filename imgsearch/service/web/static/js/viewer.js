// The viewer: one image large, with its size, date, folder and metadata, "More like this",
// the original file, and ← → through the list it was opened from (Esc closes). The image is in
// the URL (`image=ID`): a link opens it, a reload keeps it open, Back closes it.
import { api, isAbort, Latest } from "./api.js";
import { $, baseName, el, folderOf } from "./dom.js";
import { afterRoute, go, params, record } from "./router.js";

const dialog = document.querySelector("dialog.viewer");
const loading = new Latest();
const OPENED = "viewer"; // history.state of an entry the viewer added: closing goes Back
let ids = [];
let position = 0;
let opener = null;
let closedByRoute = false; // closed by a change of the URL (Back): history is as it should be

const isUrl = (path) => /^https?:\/\//i.test(path);

function detail(term, value) {
  return value === null || value === undefined || value === "" ? [] : [el("dt", {}, term), el("dd", {}, String(value))];
}

function idIn(p) {
  const id = Number(p.get("image"));
  return Number.isSafeInteger(id) && id > 0 ? id : null;
}

// Where the image is in its list: "3 of 20" and ← →, or nothing for an image alone.
function showPosition() {
  document.querySelector(".viewer-nav").hidden = ids.length < 2;
  $("viewer-position").textContent = `${position + 1} of ${ids.length}`;
  $("viewer-prev").disabled = position === 0;
  $("viewer-next").disabled = position >= ids.length - 1;
}

async function show() {
  const id = ids[position];
  showPosition();
  $("viewer-title").textContent = `Image ${id}`;
  $("viewer-details").replaceChildren();
  const image = $("viewer-image");
  image.hidden = false;
  image.onerror = () => { image.hidden = true; };
  image.src = `/api/images/${id}/thumb?size=1024`;
  image.alt = "";
  const signal = loading.start();
  try {
    const info = await api(`/api/images/${id}`, { signal });
    const name = baseName(info.path);
    $("viewer-title").textContent = name;
    image.alt = name;
    if (!isUrl(info.path)) {
      image.onerror = () => {
        image.onerror = () => { image.hidden = true; };
        image.src = `/api/images/${id}/thumb?size=1024`;
      };
      image.src = `/api/images/${id}/file`;
    }
    const original = $("viewer-original");
    original.href = isUrl(info.path) ? info.path : `/api/images/${id}/file`;
    const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : null);
    $("viewer-details").replaceChildren(
      ...detail("Folder", isUrl(info.path) ? null : folderOf(info.path)),
      ...detail("Size", info.width && info.height ? `${info.width} × ${info.height} px` : null),
      ...detail("File", `${info.byte_size.toLocaleString()} bytes${info.format ? `, ${info.format}` : ""}`),
      ...detail("Modified", when(info.mtime)),
      ...detail("Added", when(info.indexed_at)),
      ...detail("Id", info.id),
      ...Object.entries(info.metadata || {}).flatMap(([key, value]) => detail(key, value)),
    );
  } catch (error) {
    if (isAbort(error)) return;
    image.hidden = true;
    $("viewer-details").replaceChildren(...detail("Not shown", error.message));
  }
}

function step(delta) {
  const next = position + delta;
  if (next < 0 || next >= ids.length) return;
  position = next;
  const p = params();
  p.set("image", ids[position]);
  record(p, { state: history.state }); // the same history entry, now on this image
  show();
}

function open() {
  if (!dialog.open) {
    opener = document.activeElement;
    closedByRoute = false; // a close that Back made is over, its event come or not
    dialog.showModal();
  }
  show();
}

// Open the viewer on `list[index]` (image ids): a new history entry with `image=`.
export function openViewer(list, index) {
  ids = list;
  position = index;
  const p = params();
  p.set("image", ids[position]);
  record(p, { push: !dialog.open, state: dialog.open ? history.state : OPENED });
  open();
}

// A view's list of images, once it is on screen: the viewer opened by a link or a reload on
// one of them steps through the list too.
export function offerList(list) {
  const id = ids[position];
  if (dialog.open && ids.length === 1 && list.includes(id)) {
    ids = list;
    position = list.indexOf(id);
    showPosition();
  }
}

// After each change of the URL: open the viewer on `image=`, or close it.
afterRoute((p) => {
  const id = idIn(p);
  if (id === null) {
    if (dialog.open) {
      loading.cancel();
      closedByRoute = true;
      dialog.close();
    }
    return;
  }
  if (dialog.open && ids[position] === id) return;
  const at = ids.indexOf(id);
  if (at >= 0) position = at;
  else [ids, position] = [[id], 0];
  open();
});

dialog.addEventListener("keydown", (event) => {
  if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
});
// Closed (Esc, ×, a click beside it): the URL loses `image=`; an entry the viewer added is left
// by going Back, one it came with (a link) is rewritten. The event comes a moment after the
// close, so it reads nothing of a close that Back made (the URL has no `image=` already) or of
// one the viewer was opened again since (Forward at once): either would go Back again.
dialog.addEventListener("close", () => {
  if (dialog.open) return;
  if (closedByRoute) {
    closedByRoute = false;
    if (opener && opener.isConnected) opener.focus();
    return;
  }
  loading.cancel();
  const p = params();
  if (p.has("image")) {
    if (history.state === OPENED) history.back();
    else {
      p.delete("image");
      record(p);
    }
  }
  if (opener && opener.isConnected) opener.focus();
});
dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
$("viewer-close").addEventListener("click", () => dialog.close());
$("viewer-prev").addEventListener("click", () => step(-1));
$("viewer-next").addEventListener("click", () => step(1));
// "More like this": a search for the image, in place of the viewer's history entry.
$("viewer-similar").addEventListener("click", () => {
  const id = ids[position];
  record(new URLSearchParams({ view: "search", id }));
  dialog.close(); // no `image=` left: the close keeps history as it is
  go(new URLSearchParams({ view: "search", id }), { push: false });
});
