// The API token that changes need (duplicate decisions, making clusters and the map): typed
// once, kept in this browser (localStorage) until "Forget the token". One field, moved into the
// view that needs it.
import { $ } from "./dom.js";

const KEY = "imgsearch-token";

export const token = () => $("token").value.trim();

function update() {
  $("forget-token").hidden = !token();
}

// Put the token field in `slot` (an element of the view shown).
export function placeToken(slot) {
  if ($("token-panel").parentElement !== slot) slot.append($("token-panel"));
}

// Headers of a change: JSON, and the token.
export const writeHeaders = () => ({ "content-type": "application/json", authorization: `Bearer ${token()}` });

// What to say when a change was refused, in words for people (else the server's sentence).
export function refusal(error) {
  if (error.status === 401) return "The API token was not accepted: check it (ask whoever runs imgsearch), then try again.";
  if (error.status === 403) return "This imgsearch does not accept changes: it was started without an API token.";
  return error.message;
}

// Say that the token is needed, and go to its field.
export function askForToken(say) {
  say("Enter the API token first (ask whoever runs imgsearch for it).");
  $("token").focus();
}

export function wire() {
  const field = $("token");
  field.value = localStorage.getItem(KEY) || sessionStorage.getItem(KEY) || "";
  sessionStorage.removeItem(KEY); // kept per tab before: now in localStorage
  if (field.value) localStorage.setItem(KEY, field.value);
  update();
  field.addEventListener("input", () => {
    if (token()) localStorage.setItem(KEY, token());
    else localStorage.removeItem(KEY);
    update();
  });
  $("forget-token").addEventListener("click", () => {
    localStorage.removeItem(KEY);
    field.value = "";
    update();
    field.focus();
  });
}
