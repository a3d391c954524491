// The console's only way to the server: the public HTTP API, with the credentials the
// user typed. They live in this tab's sessionStorage (gone when the tab closes) and are
// sent in the Authorization header only — never in a URL.

const STORE = "videogate.session";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.param = err.param || null;
  }
}

export const session = {
  get() {
    try {
      const raw = sessionStorage.getItem(STORE);
      const value = raw ? JSON.parse(raw) : {};
      return { key: value.key || null, admin: value.admin || null, account: value.account || null };
    } catch {
      return { key: null, admin: null, account: null };
    }
  },
  set(value) {
    sessionStorage.setItem(STORE, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(STORE);
  },
  signedIn() {
    const s = this.get();
    return Boolean(s.key || s.admin);
  },
};

// Called when the server refuses the stored credentials (revoked key, changed token).
let onRefused = () => {};
export function whenRefused(fn) {
  onRefused = fn;
}

async function request(method, path, { secret, body, form, signal, refuse = true } = {}) {
  const headers = { Accept: "application/json" };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload, signal, credentials: "omit" });
  let data = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && refuse) onRefused(err);
    throw err;
  }
  return data;
}

// With the API key (the /v1 surface).
export const api = {
  get: (path, opts = {}) => request("GET", path, { ...opts, secret: session.get().key }),
  post: (path, body, opts = {}) => request("POST", path, { ...opts, body, secret: session.get().key }),
  upload: (path, form, opts = {}) => request("POST", path, { ...opts, form, secret: session.get().key }),
  del: (path, opts = {}) => request("DELETE", path, { ...opts, secret: session.get().key }),
};

// With the admin token (the /admin surface).
export const admin = {
  get: (path, opts = {}) => request("GET", path, { ...opts, secret: session.get().admin }),
  post: (path, body, opts = {}) => request("POST", path, { ...opts, body: body ?? {}, secret: session.get().admin }),
  patch: (path, body, opts = {}) => request("PATCH", path, { ...opts, body, secret: session.get().admin }),
};

// Checks a credential without storing it; never signs anybody out.
export async function checkKey(key) {
  return request("GET", "/v1/account", { secret: key, refuse: false });
}

export async function checkAdmin(token) {
  return request("GET", "/admin/overview", { secret: token, refuse: false });
}

// One-click sign-in on the machine that runs videogate (the server decides; see
// docs/console.md). The custom header makes a cross-site request preflight.
export async function localKey() {
  const res = await fetch("/console/local-sign-in", {
    method: "POST",
    headers: { "X-Videogate-Console": "1", Accept: "application/json" },
    credentials: "omit",
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data.key;
}
