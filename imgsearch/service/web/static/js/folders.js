// The collection's folders (GET /api/folders), fetched once for every folder picker.
import { api } from "./api.js";

let pending = null;

export function folders() {
  if (!pending) {
    pending = api("/api/folders").then((data) => data.folders).catch((error) => {
      pending = null;
      throw error;
    });
  }
  return pending;
}
