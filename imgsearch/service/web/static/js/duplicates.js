// Duplicates: groups of near-identical images, a page at a time, each with the image to keep
// suggested (and why); choose another keeper, leave images out, or say none are duplicates.
import { api, isAbort, Latest } from "./api.js";
import { $, baseName, card, el, plural, say } from "./dom.js";
import { go } from "./router.js";
import { similarTo } from "./search.js";
import { openViewer } from "./viewer.js";

const PAGE = 10;
const SHOWN = 12; // members shown at first in a large group
const TOKEN = "imgsearch-token";
const request = new Latest();
let key = null;

// No threshold: the server's calibrated rule (each image's neighbours that stand out from
// those around it by the margin measured on the collection); a threshold: one similarity for all.
function stateOf(p) {
  const threshold = p.get("threshold") ? Number(p.get("threshold")) : null;
  return {
    threshold: threshold >= 0.5 && threshold <= 1 ? threshold : null,
    offset: Math.max(0, Number.parseInt(p.get("offset") || "0", 10) || 0),
  };
}

function paramsOf(state) {
  const p = new URLSearchParams({ view: "duplicates" });
  if (state.threshold !== null) p.set("threshold", state.threshold);
  if (state.offset) p.set("offset", state.offset);
  return p;
}

async function decide(group, body) {
  const message = $("duplicates-message");
  const token = $("token").value;
  if (!token) {
    say(message, "Decisions need the API token (IMGSEARCH_API_TOKEN): enter it above.", "error");
    $("token").focus();
    return;
  }
  say(message, "Saving…", "busy");
  try {
    const done = await api(`/api/duplicates/${group.id}/decision`, {
      method: "POST",
      body: JSON.stringify({ image_ids: group.members.map((m) => m.id), ...body }),
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    });
    key = null; // the groups change with the decision
    await load(stateOf(new URLSearchParams(location.search)));
    say(message, `Saved for group ${group.id} (${plural(done.pairs, "decision")}). ${message.textContent}`);
  } catch (error) {
    if (!isAbort(error)) say(message, error.message, "error");
  }
}

function groupView(group) {
  const ids = group.members.map((m) => m.id);
  const keeper = group.members.find((m) => m.id === group.keep) || group.members[0];
  const members = group.members.map((member, i) => {
    const keep = el("input", { type: "radio", name: `keep-${group.id}`, value: String(member.id), checked: member.id === group.keep,
      dataset: { testid: "dup-keep-choice" } });
    const leave = el("input", { type: "checkbox", value: String(member.id), dataset: { testid: "dup-exclude" } });
    const item = card({ ...member, similarity: member.similarity }, { testid: "dup-member",
      onOpen: () => openViewer(ids, i, similarTo),
      extra: [el("label", { className: "choice" }, keep, "Keep"), el("label", { className: "choice" }, leave, "Not a duplicate")] });
    if (member.id === group.keep) item.classList.add("keep");
    keep.addEventListener("change", () => {
      for (const other of item.parentElement.children) other.classList.toggle("keep", other === item);
    });
    if (i >= SHOWN) item.hidden = true;
    return item;
  });
  const list = el("ul", { className: "grid", "aria-label": `Group ${group.id}` }, ...members);
  const more = group.members.length > SHOWN
    ? el("button", { type: "button", className: "more" }, `Show all ${group.members.length} images`) : null;
  if (more) more.addEventListener("click", () => { for (const m of members) m.hidden = false; more.remove(); });
  const keepChosen = el("button", { type: "button", className: "primary", dataset: { testid: "dup-keep" } },
    "Keep the chosen image");
  keepChosen.addEventListener("click", () => {
    const chosen = Number(list.querySelector(`input[name="keep-${group.id}"]:checked`).value);
    const exclude = [...list.querySelectorAll("input[type=checkbox]:checked")].map((box) => Number(box.value));
    if (exclude.includes(chosen)) {
      say($("duplicates-message"), "The image to keep cannot also be left out as not a duplicate.", "error");
      return;
    }
    decide(group, { decision: "keep", keep: chosen, exclude });
  });
  const none = el("button", { type: "button", dataset: { testid: "dup-not" } }, "None of these are duplicates");
  none.addEventListener("click", () => decide(group, { decision: "not-duplicates" }));
  const why = group.reasons.length ? `: ${group.reasons.join(", ")}` : "";
  return el("section", { className: "group", dataset: { testid: "dup-group", id: String(group.id) }, "aria-labelledby": `group-${group.id}` },
    el("h3", { id: `group-${group.id}` }, `Group ${group.id}: ${plural(group.members.length, "image")}`),
    el("p", { className: "reasons" }, `Suggested keeper: ${baseName(keeper.path)}${why}.`),
    list, more, el("div", { className: "decide" }, keepChosen, none));
}

function ruleText(page) {
  if (page.rule === "threshold") return `at similarity ${page.threshold} or more`;
  const margin = Number(page.margin).toFixed(2);
  return page.rule === "calibrated"
    ? `by the calibrated rule (margin ${margin} over the images around them)`
    : `by the default rule (margin ${margin}; \`imgsearch duplicates --calibrate\` measures one for this collection)`;
}

async function load(state) {
  const signal = request.start();
  const message = $("duplicates-message");
  say(message, "Finding duplicates… (the first time on a large collection takes a while)", "busy");
  $("duplicates").setAttribute("aria-busy", "true");
  $("find-duplicates").disabled = true;
  try {
    const q = new URLSearchParams({ offset: state.offset, limit: PAGE });
    if (state.threshold !== null) q.set("threshold", state.threshold);
    const page = await api(`/api/duplicates?${q}`, { signal });
    $("duplicates").replaceChildren(...page.groups.map(groupView));
    const pager = $("duplicates-pager");
    pager.hidden = page.total <= PAGE;
    const first = page.total ? state.offset + 1 : 0;
    $("dup-page").textContent = `Groups ${first}–${state.offset + page.groups.length} of ${page.total}`;
    $("dup-prev").disabled = state.offset === 0;
    $("dup-next").disabled = page.next_offset === null;
    const rule = ruleText(page);
    say(message, page.total ? `${plural(page.total, "group")} of near-identical images ${rule}.` : `No duplicates ${rule}.`);
  } catch (error) {
    if (isAbort(error)) return;
    $("duplicates").replaceChildren();
    say(message, error.message, "error");
  } finally {
    if (!signal.aborted) {
      $("duplicates").setAttribute("aria-busy", "false");
      $("find-duplicates").disabled = false;
    }
  }
}

export function show(p) {
  const state = stateOf(p);
  $("threshold").value = state.threshold === null ? "" : state.threshold;
  const next = JSON.stringify(state);
  if (next === key) return;
  key = next;
  load(state);
}

export function wire() {
  $("token").value = sessionStorage.getItem(TOKEN) || "";
  $("token").addEventListener("input", () => sessionStorage.setItem(TOKEN, $("token").value));
  document.getElementById("duplicates-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("threshold").value.trim();
    const threshold = typed === "" ? null : Number(typed);
    if (threshold !== null && !(threshold >= 0.5 && threshold <= 1)) {
      say($("duplicates-message"), "The threshold is a similarity from 0.5 to 1, or empty for the calibrated rule.", "error");
      return;
    }
    key = null;
    go(paramsOf({ threshold, offset: 0 }));
  });
  const page = (delta) => {
    const state = stateOf(new URLSearchParams(location.search));
    go(paramsOf({ ...state, offset: Math.max(0, state.offset + delta * PAGE) }));
  };
  $("dup-prev").addEventListener("click", () => page(-1));
  $("dup-next").addEventListener("click", () => page(1));
}
