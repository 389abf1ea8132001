// Duplicates: groups of near-identical images, a page at a time, each with the image to keep
// suggested (and why); choose another keeper, leave images out, or say none are duplicates.
// A group whose keeper was chosen over all the others leaves the list (shown again with "Show
// groups already decided").
import { api, isAbort, Latest } from "./api.js";
import { $, baseName, card, el, plural, say } from "./dom.js";
import { go, params } from "./router.js";
import { askForToken, placeToken, refusal, token, writeHeaders } from "./token.js";
import { offerList, openViewer } from "./viewer.js";

const PAGE = 10;
const SHOWN = 12; // members shown at first in a large group
const RETRIES = 60; // answers "busy, try again" waited through before giving up
const request = new Latest();
let key = null;

// No threshold: the server's rule for this collection (each image's neighbours that stand out
// from those around it); a threshold: one similarity for all.
function stateOf(p) {
  const threshold = p.get("threshold") ? Number(p.get("threshold")) : null;
  return {
    threshold: threshold >= 0.5 && threshold <= 1 ? threshold : null,
    offset: Math.max(0, Number.parseInt(p.get("offset") || "0", 10) || 0),
    decided: p.get("decided") === "1",
  };
}

function paramsOf(state) {
  const p = new URLSearchParams({ view: "duplicates" });
  if (state.threshold !== null) p.set("threshold", state.threshold);
  if (state.decided) p.set("decided", "1");
  if (state.offset) p.set("offset", state.offset);
  return p;
}

const names = (group, ids) => ids.map((id) => baseName(group.members.find((m) => m.id === id).path)).join(", ");

async function decide(group, body) {
  const message = $("duplicates-message");
  if (!token()) {
    askForToken((text) => say(message, text, "error"));
    return;
  }
  say(message, "Saving…", "busy");
  try {
    await api(`/api/duplicates/${group.id}/decision`, {
      method: "POST",
      body: JSON.stringify({ image_ids: group.members.map((m) => m.id), ...body }),
      headers: writeHeaders(),
    });
    const done = body.decision === "keep" ? `you keep ${names(group, [body.keep])}` : "none of these are duplicates";
    const left = body.exclude && body.exclude.length ? `; not a duplicate: ${names(group, body.exclude)}` : "";
    key = null; // the groups change with the decision
    await load(stateOf(params()));
    say(message, `Saved for group ${group.id}: ${done}${left}. ${message.textContent}`);
    const next = document.querySelector('[data-testid="dup-group"] h3');
    (next || message).focus();
  } catch (error) {
    if (!isAbort(error)) say(message, refusal(error), "error");
  }
}

function reasonText(group, keeper) {
  if (group.decided) return `Decided: you keep ${baseName(keeper.path)}.`;
  if (group.reasons.includes("your choice")) return `You chose to keep ${baseName(keeper.path)}; decide about the others.`;
  const why = group.reasons.length ? ` (${group.reasons.join(", ")})` : "";
  return `Suggested to keep: ${baseName(keeper.path)}${why}.`;
}

function groupView(group) {
  const ids = group.members.map((m) => m.id);
  const keeper = group.members.find((m) => m.id === group.keep) || group.members[0];
  const members = group.members.map((member, i) => {
    const keep = el("input", { type: "radio", name: `keep-${group.id}`, value: String(member.id), checked: member.id === group.keep,
      dataset: { testid: "dup-keep-choice" } });
    const leave = el("input", { type: "checkbox", value: String(member.id), dataset: { testid: "dup-exclude" } });
    const item = card(member, { testid: "dup-member",
      onOpen: () => openViewer(ids, i),
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
      say($("duplicates-message"), "The image to keep cannot also be marked “Not a duplicate”.", "error");
      return;
    }
    decide(group, { decision: "keep", keep: chosen, exclude });
  });
  const none = el("button", { type: "button", dataset: { testid: "dup-not" } }, "None of these are duplicates");
  none.addEventListener("click", () => decide(group, { decision: "not-duplicates" }));
  return el("section", { className: `group${group.decided ? " decided" : ""}`, dataset: { testid: "dup-group", id: String(group.id) },
    "aria-labelledby": `group-${group.id}` },
  el("h3", { id: `group-${group.id}`, tabIndex: -1 }, `Group ${group.id}: ${plural(group.members.length, "image")}`),
  el("p", { className: "reasons", dataset: { testid: "dup-reasons" } }, reasonText(group, keeper)),
  list, more, el("div", { className: "decide" }, keepChosen, none));
}

// What the groups are, in one sentence.
function ruleText(page) {
  const found = page.total ? `${plural(page.total, "group")} of near-identical images` : "No near-identical images";
  if (page.rule === "threshold") return `${found} at similarity ${page.threshold} or more.`;
  if (page.calibrating) {
    return `${found}. imgsearch is still learning how alike copies are in this library: `
      + "the groups may change a little when you come back.";
  }
  return page.rule === "calibrated" ? `${found}, by how alike copies are in this library.` : `${found}.`;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("aborted", "AbortError")); });
});

// The page of groups; while another request computes them (503 with Retry-After), waits and asks again.
async function fetchGroups(url, signal) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api(url, { signal });
    } catch (error) {
      if (error.status !== 503 || error.retryAfter === null || attempt >= RETRIES) throw error;
      await sleep(Math.min(10, Math.max(1, error.retryAfter)) * 1000, signal);
    }
  }
}

async function load(state) {
  const signal = request.start();
  const message = $("duplicates-message");
  say(message, "Finding duplicates… (the first time, on a large library, this takes a while)", "busy");
  $("duplicates").setAttribute("aria-busy", "true");
  $("find-duplicates").disabled = true;
  try {
    const q = new URLSearchParams({ offset: state.offset, limit: PAGE });
    if (state.threshold !== null) q.set("threshold", state.threshold);
    if (state.decided) q.set("decided", "true");
    const page = await fetchGroups(`/api/duplicates?${q}`, signal);
    $("duplicates").replaceChildren(...page.groups.map(groupView));
    offerList(page.groups.flatMap((g) => g.members.map((m) => m.id)));
    const pager = $("duplicates-pager");
    pager.hidden = page.total <= PAGE;
    const first = page.total ? state.offset + 1 : 0;
    $("dup-page").textContent = `Groups ${first}–${state.offset + page.groups.length} of ${page.total}`;
    $("dup-prev").disabled = state.offset === 0;
    $("dup-next").disabled = page.next_offset === null;
    say(message, ruleText(page));
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
  placeToken($("duplicates-token"));
  const state = stateOf(p);
  $("threshold").value = state.threshold === null ? "" : state.threshold;
  $("show-decided").checked = state.decided;
  const next = JSON.stringify(state);
  if (next === key) return;
  key = next;
  load(state);
}

export function wire() {
  document.getElementById("duplicates-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("threshold").value.trim();
    const threshold = typed === "" ? null : Number(typed);
    if (threshold !== null && !(threshold >= 0.5 && threshold <= 1)) {
      say($("duplicates-message"), "The similarity threshold is a number from 0.5 to 1, or empty to let imgsearch choose.", "error");
      $("threshold").focus();
      return;
    }
    key = null;
    go(paramsOf({ threshold, decided: $("show-decided").checked, offset: 0 }));
  });
  $("show-decided").addEventListener("change", () => go(paramsOf({ ...stateOf(params()), decided: $("show-decided").checked, offset: 0 })));
  const page = (delta) => {
    const state = stateOf(params());
    go(paramsOf({ ...state, offset: Math.max(0, state.offset + delta * PAGE) }));
  };
  $("dup-prev").addEventListener("click", () => page(-1));
  $("dup-next").addEventListener("click", () => page(1));
}
