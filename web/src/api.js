// The API client: the session's tokens, refreshed in the background, and fetch with them.

const BASE = "/api/v1";
const STORE = "telemetra.session";
// Refresh this long before the access token expires (halfway, for tokens of 2 minutes or less).
const REFRESH_MARGIN_SECONDS = 60;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code;
  }
}

let session = load();
let refreshing = null;
let refreshTimer = null;
const listeners = new Set();

function load() {
  try {
    return JSON.parse(localStorage.getItem(STORE)) || null;
  } catch {
    return null;
  }
}

function store(next) {
  session = next;
  if (next) localStorage.setItem(STORE, JSON.stringify(next));
  else localStorage.removeItem(STORE);
  schedule();
}

/** Called with "login", "refresh" or the reason for an ended session ("expired", "logout"). */
export function onSession(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(what) {
  for (const listener of listeners) listener(what);
}

// Another tab refreshed or logged out: take its tokens, so the two never spend the same one.
window.addEventListener("storage", (event) => {
  if (event.key !== STORE) return;
  const had = session;
  session = load();
  schedule();
  if (had && !session) emit("logout");
});

export function loggedIn() {
  return Boolean(session?.refresh_token);
}

export function accessToken() {
  return session?.access_token;
}

function fromTokens(tokens) {
  return { access_token: tokens.access_token, refresh_token: tokens.refresh_token,
           expires_at: Date.now() + (tokens.expires_in || 900) * 1000 };
}

function schedule() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const left = (session.expires_at - Date.now()) / 1000;
  // Tabs share the session: a random lead keeps them from refreshing at the same moment
  // (the server would take the second use of one refresh token for a stolen one).
  const lead = Math.random() * Math.min(20, left / 4);
  const due = left > 2 * REFRESH_MARGIN_SECONDS ? left - REFRESH_MARGIN_SECONDS : left / 2;
  const wait = Math.max(1, due - lead);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), wait * 1000);
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { detail: `${response.status} ${response.statusText}` };
  }
}

export async function login(username, password) {
  const response = await fetch(`${BASE}/auth/login`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  store(fromTokens(await response.json()));
  emit("login");
}

/** A new token pair for the refresh token (once at a time: a spent one revokes the family). */
export function refresh() {
  if (refreshing) return refreshing;
  const stored = load();
  if (stored && session && stored.refresh_token !== session.refresh_token &&
      stored.expires_at > Date.now() + 5000) {
    session = stored; // another tab refreshed already
    schedule();
    return Promise.resolve();
  }
  const spent = session?.refresh_token;
  if (!spent) return Promise.reject(new ApiError(401, { detail: "not logged in" }));
  refreshing = (async () => {
    try {
      const response = await fetch(`${BASE}/auth/refresh`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: spent }),
      });
      if (response.status === 401 || response.status === 403) {
        // Another tab may have refreshed first: its pair is in storage.
        const stored = load();
        if (stored && stored.refresh_token !== spent) {
          session = stored;
          schedule();
          return;
        }
        end("expired");
        throw new ApiError(response.status, await problemOf(response));
      }
      if (!response.ok) throw new ApiError(response.status, await problemOf(response));
      store(fromTokens(await response.json()));
      emit("refresh");
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function end(reason) {
  store(null);
  emit(reason);
}

export async function logout() {
  const current = session;
  store(null);
  if (current) {
    try {
      await fetch(`${BASE}/auth/logout`, {
        method: "POST",
        headers: { "Content-Type": "application/json",
                   Authorization: `Bearer ${current.access_token}` },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      });
    } catch {
      // The tokens are forgotten here whatever the server says.
    }
  }
  emit("logout");
}

/** fetch under /api/v1 with the session; JSON in and out; an ApiError for problems. */
export async function api(path, { method = "GET", body, query, raw = false } = {}) {
  let url = `${BASE}${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") params.set(k, v);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const send = () => fetch(url, {
    method,
    headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
               ...(session ? { Authorization: `Bearer ${session.access_token}` } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (session && session.expires_at - Date.now() < 5000) await refresh().catch(() => {});
  let response = await send();
  if (response.status === 401 && session) {
    await refresh();
    response = await send();
    if (response.status === 401) end("expired");
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** Every item of an entity list (pages of 1000). */
export async function all(path, query = {}) {
  const items = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api(path, { query: { ...query, limit: 1000, offset } });
    items.push(...page.items);
    if (items.length >= page.total || !page.items.length) return items;
  }
}

schedule();
