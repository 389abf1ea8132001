// Talking to the API: every answer is JSON or a clear error; a request can be cancelled.

export class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from a 503's Retry-After
  }
}

export const isAbort = (error) => error && error.name === "AbortError";

const WAIT_FOR_SERVER_S = 30; // how long a read waits out 503s (the database coming back)

const pause = (seconds, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, seconds * 1000);
  signal?.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("Aborted", "AbortError")); });
});

// GET (or another method) `url`; the JSON answer, else an ApiError whose message is one
// sentence for the person using the page (the API's `detail`, or what went wrong). A read that
// meets a 503 with Retry-After (the database restarting, say) asks again by itself for up to
// WAIT_FOR_SERVER_S seconds, so a view recovers without a reload.
export async function api(url, options = {}) {
  const started = Date.now();
  for (;;) {
    try {
      return await once(url, options);
    } catch (error) {
      const waited = (Date.now() - started) / 1000;
      const read = (options.method || "GET") === "GET";
      if (!read || error.status !== 503 || error.retryAfter === null || waited >= WAIT_FOR_SERVER_S) throw error;
      await pause(Math.min(5, Math.max(1, error.retryAfter)), options.signal);
    }
  }
}

async function once(url, { method = "GET", body, headers, signal } = {}) {
  let response;
  try {
    response = await fetch(url, { method, body, headers, signal });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError("The server cannot be reached: check the connection, then try again.", 0);
  }
  let data = null;
  if ((response.headers.get("content-type") || "").includes("application/json")) {
    try {
      data = await response.json();
    } catch (error) {
      if (isAbort(error)) throw error;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail
      : `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}; try again in a moment.`;
    const retry = Number.parseInt(response.headers.get("retry-after") || "", 10);
    throw new ApiError(detail, response.status, Number.isFinite(retry) ? retry : null);
  }
  if (data === null) throw new ApiError("The server's answer could not be read; try again.", response.status);
  return data;
}

// One request at a time for one purpose: starting the next cancels the one before, so a slow
// earlier answer can never replace a newer one.
export class Latest {
  constructor() {
    this.controller = null;
  }

  start() {
    this.cancel();
    this.controller = new AbortController();
    return this.controller.signal;
  }

  cancel() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }
}
