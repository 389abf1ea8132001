// Making the clusters and the map from the page (POST /api/clusters, then POST /api/map, with
// the API token): one panel, shown by the clusters or the map view when they have none yet or
// the person asks to make them again, with the step and the time spent while it runs.
import { api } from "./api.js";
import { $, say } from "./dom.js";
import { askForToken, placeToken, refusal, token, writeHeaders } from "./token.js";

const made = []; // called when a run has finished: the views load what it made
let running = false;

export function onMade(callback) {
  made.push(callback);
}

// Show the panel in `slot` (an element of the view shown), `why` it is there.
export function showMake(slot, why) {
  if ($("make-panel").parentElement !== slot) slot.append($("make-panel"));
  if (!running) say($("make-message"), "");
  $("make-why").textContent = why;
  placeToken($("make-token"));
  slot.hidden = false;
}

const message = (text, kind) => say($("make-message"), text, kind);

async function post(url, body) {
  return api(url, { method: "POST", body: JSON.stringify(body), headers: writeHeaders() });
}

async function make() {
  if (running) return;
  if (!token()) {
    askForToken((text) => message(text, "error"));
    return;
  }
  const typed = $("make-n").value.trim();
  const n = typed === "" ? null : Number(typed);
  if (n !== null && !(Number.isInteger(n) && n >= 2 && n <= 200)) {
    message("The number of clusters is a whole number from 2 to 200, or empty to let imgsearch choose.", "error");
    $("make-n").focus();
    return;
  }
  running = true;
  $("make").disabled = true;
  $("make-progress").hidden = false;
  const started = Date.now();
  const tick = () => { $("make-elapsed").textContent = `${Math.round((Date.now() - started) / 1000)} s`; };
  tick();
  const timer = setInterval(tick, 1000);
  try {
    message("Step 1 of 2: grouping alike images into clusters…", "busy");
    await post("/api/clusters", n === null ? {} : { n });
    message("Step 2 of 2: placing the images on the map…", "busy");
    await post("/api/map", {});
    message("Done: the clusters and the map are ready.");
    for (const callback of made) callback();
  } catch (error) {
    message(refusal(error), "error");
    if (error.status === 401) $("token").focus();
  } finally {
    clearInterval(timer);
    running = false;
    $("make").disabled = false;
    $("make-progress").hidden = true;
  }
}

export function wire() {
  $("make").addEventListener("click", make);
}
