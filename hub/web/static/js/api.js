// REST calls to the hub (same origin; the HttpOnly session cookie goes along by itself).

export class ApiError extends Error {
  constructor(status, message, retryAfterS = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 = the hub could not be reached
    this.retryAfterS = retryAfterS;
  }
}

function parseRetryAfter(v) {
  if (!v) return null;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, (t - Date.now()) / 1000) : null;
}

async function request(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `${method} ${path}: ${err.message}`);
  }
  if (!res.ok) {
    throw new ApiError(res.status, `${method} ${path}: HTTP ${res.status}`, parseRetryAfter(res.headers.get("Retry-After")));
  }
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_err) {
    throw new ApiError(res.status, `${method} ${path}: the answer is not JSON`);
  }
}

export const api = {
  session: () => request("/api/v1/session"),
  login: (identity, password) => request("/api/v1/login", { method: "POST", body: { identity, password } }),
  logout: () => request("/api/v1/logout", { method: "POST" }),
  status: () => request("/api/v1/status"),
  picture: () => request("/api/v1/picture.geojson"),
  trails: () => request("/api/v1/trails.geojson"),
  history: (id) => request(`/api/v1/tracks/${encodeURIComponent(id)}/history.geojson`),
};
