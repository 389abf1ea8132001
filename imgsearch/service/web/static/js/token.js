// The API token that changes need (duplicate decisions, making clusters and the map): typed
// once, kept in this browser (localStorage) until "Forget the token". One panel, moved into the
// view that needs it: the field while the token is typed (or after it was refused), else a line
// saying it is remembered.
import { $ } from "./dom.js";

const KEY = "imgsearch-token";

export const token = () => $("token").value.trim();

// Show the field (`entering`), or that the token is remembered.
function mode(entering) {
  $("token-entry").hidden = !entering;
  $("token-saved").hidden = entering;
}

// Put the token panel in `slot` (an element of the view shown): a token already typed shows as
// remembered.
export function placeToken(slot) {
  if ($("token-panel").parentElement === slot) return;
  slot.append($("token-panel"));
  mode(!token());
}

// Headers of a change: JSON, and the token.
export const writeHeaders = () => ({ "content-type": "application/json", authorization: `Bearer ${token()}` });

// Ask for the token again, in its field.
function enter() {
  mode(true);
  $("token").focus();
  $("token").select();
}

// What to say when a change was refused, in words for people (else the server's sentence); a
// token refused is asked for again.
export function refusal(error) {
  if (error.status === 401) {
    enter();
    return "The API token was not accepted: check it (ask whoever runs imgsearch), then try again.";
  }
  if (error.status === 403) return "This imgsearch does not accept changes: it was started without an API token.";
  return error.message;
}

// Say that the token is needed (`say(sentence)`), and go to its field.
export function askForToken(say) {
  say("Enter the API token first (ask whoever runs imgsearch for it).");
  enter();
}

export function wire() {
  const field = $("token");
  field.value = localStorage.getItem(KEY) || sessionStorage.getItem(KEY) || "";
  sessionStorage.removeItem(KEY); // kept per tab before: now in localStorage
  if (field.value) localStorage.setItem(KEY, field.value);
  mode(!token());
  field.addEventListener("input", () => {
    if (token()) localStorage.setItem(KEY, token());
    else localStorage.removeItem(KEY);
  });
  $("forget-token").addEventListener("click", () => {
    localStorage.removeItem(KEY);
    field.value = "";
    enter();
  });
}
