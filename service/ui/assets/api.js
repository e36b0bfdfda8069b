// The one way pages talk to envyard: /api/v1 with the login cookie, and on every write the
// CSRF token that /api/v1/whoami hands a cookie-authenticated browser. Errors come back as
// ApiError with the API's own words (and a spec's line, when it names one).

const BASE = new URL(document.body.dataset.api || "../api/v1/", location.href);
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, detail, line = null) {
    super(detail);
    this.status = status;
    this.line = line;
  }
}

/** The absolute URL of an API path ("environments/a/b"), with a query object. */
export function apiUrl(path, query = {}) {
  const url = new URL(path, BASE);
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    for (const each of Array.isArray(value) ? value : [value]) {
      url.searchParams.append(key, String(each));
    }
  }
  return url;
}

function cookieToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("envyard-csrf="));
  return found ? decodeURIComponent(found.slice("envyard-csrf=".length)) : null;
}

/** Send the browser to the login page (the hub's, or envyard's form). */
export function toLogin() {
  location.assign(new URL("login", location.href.split("#")[0]).href);
}

/**
 * Call the API. `json` sends JSON, `text` sends YAML/text, `file` sends a File as it is.
 * Answers parsed JSON (or text); throws ApiError.
 */
export async function api(path, { method = "GET", query, json, text, file, headers = {},
  signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers },
    credentials: "same-origin", signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (text !== undefined) {
    init.body = text;
    init.headers["Content-Type"] = "text/yaml";
  } else if (file !== undefined) {
    init.body = file;
    init.headers["Content-Type"] = "text/yaml";
  }
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken || cookieToken();
    if (token) init.headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query || {}), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach envyard (${err.message}); try again`);
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null)
    : await response.text();
  if (!response.ok) {
    if (response.status === 401 && path !== "whoami") toLogin();
    const detail = body && typeof body === "object" ? body.detail : body;
    throw new ApiError(response.status, typeof detail === "string" ? detail
      : JSON.stringify(detail) || `${response.status} ${response.statusText}`,
    body && typeof body === "object" ? body.line ?? null : null);
  }
  return body;
}

/** Who is logged in: {name, roles}; keeps the CSRF token for writes. */
export async function whoami() {
  const me = await api("whoami");
  csrfToken = me.csrf_token || cookieToken();
  return me;
}

/** Every page of a paginated listing (`next` cursors), as one array; `onPage` sees each. */
export async function allPages(path, key, query = {}, onPage = null) {
  const rows = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, cursor, limit: 500 } });
    rows.push(...page[key]);
    if (onPage) onPage(rows);
    cursor = page.next;
  } while (cursor);
  return rows;
}

/**
 * Follow a build's log as server-sent events. Calls onLog(line), onState(state),
 * onRestart() when a dropped stream starts over (the log is sent again from its start).
 * Returns a function that stops following.
 */
export function followLog(path, { onLog, onState, onRestart, onError }) {
  const source = new EventSource(apiUrl(path, { follow: "true" }), { withCredentials: true });
  let opened = false, ended = false;
  source.addEventListener("open", () => {
    if (opened && onRestart) onRestart();
    opened = true;
  });
  source.addEventListener("log", (event) => onLog(event.data));
  source.addEventListener("state", (event) => {
    const { state } = JSON.parse(event.data);
    onState(state);
    if (["ready", "failed", "cancelled", "deleted", "deleting"].includes(state)) {
      ended = true;
      source.close();
    }
  });
  source.addEventListener("error", () => {
    if (ended) return;
    if (source.readyState === EventSource.CLOSED && onError) onError();
  });
  return () => { ended = true; source.close(); };
}
