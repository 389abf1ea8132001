// Small DOM helpers and the image card every view shows.

export const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("aria-") || key === "role" || key === "for") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

export const baseName = (path) => path.split("/").filter(Boolean).pop() || path;

export function folderOf(path) {
  const at = path.lastIndexOf("/");
  return at > 0 ? path.slice(0, at) : "/";
}

// A view's status line: text, and whether it is an error or work in progress.
export function say(node, text, kind = "") {
  node.textContent = text;
  node.className = `message${kind ? ` ${kind}` : ""}`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

// A card: the picture (a button that opens the viewer), the file's name (its path on hover),
// the similarity when there is one, and the caller's action buttons.
export function card(item, { testid, onOpen, actions = [], extra = [] } = {}) {
  const id = item.image_id ?? item.id;
  const name = baseName(item.path);
  const open = el("button", { type: "button", className: "open", title: item.path, "aria-label": `Open ${name}` },
    el("img", { src: item.thumb_url, alt: "", loading: "lazy", width: 256, height: 256 }));
  if (onOpen) open.addEventListener("click", () => onOpen(id));
  const info = el("div", { className: "info" }, el("p", { className: "name", title: item.path }, name));
  if (typeof item.similarity === "number") {
    info.append(el("p", { className: "score", dataset: { testid: "score" } }, item.similarity.toFixed(3)));
  }
  return el("li", { className: "card", dataset: { id: String(id), testid } }, open, info, ...extra,
    actions.length ? el("div", { className: "actions" }, ...actions) : null);
}

// Options of a folder <select>: "All folders", then each folder, indented, with its count.
export function folderOptions(select, folders, chosen) {
  const options = [el("option", { value: "" }, "All folders")];
  for (const folder of folders) {
    if (!folder.name) continue; // the root: "All folders"
    const indent = "\u2003".repeat(Math.max(0, folder.depth - 1));
    options.push(el("option", { value: folder.name }, `${indent}${baseName(folder.name)} (${folder.images.toLocaleString()})`));
  }
  select.replaceChildren(...options);
  select.value = chosen || "";
  if (select.value !== (chosen || "")) {
    select.append(el("option", { value: chosen }, chosen));
    select.value = chosen;
  }
}
