// api.js: the pages' one door to the API (fetch with the fan's token, RFC 9457
// problems as ApiError), the fan's session, and the small DOM and formatting
// helpers every page uses.

export const config = JSON.parse(document.getElementById("usher-config")?.textContent || "{}");

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `http_${status}`;
    this.problem = problem;
  }
}

// The fan's token lives in localStorage: pages are same-origin, and the token
// is a short-lived bearer token from the identity provider (dev sign-in here).
export const session = {
  get token() { return localStorage.getItem("usher.token"); },
  get fan() { return JSON.parse(localStorage.getItem("usher.fan") || "null"); },
  signIn(token, fan) {
    localStorage.setItem("usher.token", token);
    localStorage.setItem("usher.fan", JSON.stringify(fan));
  },
  signOut() {
    localStorage.removeItem("usher.token");
    localStorage.removeItem("usher.fan");
  },
};

export async function api(path, { method = "GET", body, key, signal, keepalive } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers["idempotency-key"] = key;
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, keepalive, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { code: "network", detail: "We could not reach Usher. Check your connection and try again." });
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    if (response.status === 401 && session.token) session.signOut();
    throw new ApiError(response.status, data || { title: response.statusText });
  }
  return { status: response.status, data, headers: response.headers };
}

// The same request body and key each time a fan retries: the server answers a
// repeated key with its first answer, so a double click or a reload never
// charges or holds twice.
export function newKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const moneyFormat = new Intl.NumberFormat(undefined, { style: "currency", currency: (config.currency || "usd").toUpperCase() });
export const money = (cents) => moneyFormat.format(cents / 100);

export function when(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZone, timeZoneName: "short",
  }).format(new Date(iso));
}

// Seconds as "1d 02:03:04" / "4:05".
export function clock(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d > 0) return `${d}d ${pad(h)}:${pad(m)}:${pad(sec)}`;
  if (h > 0) return `${h}:${pad(m)}:${pad(sec)}`;
  return `${m}:${pad(sec)}`;
}

// The server's clock, from an answer's `server_time`: countdowns run on it, not
// on the fan's possibly wrong clock.
export function serverClock(serverTimeIso) {
  const offset = new Date(serverTimeIso).getTime() - Date.now();
  return () => Date.now() + offset;
}

// el("p", {class: "x", onclick: f}, "text", child...): a small DOM builder.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function notice(kind, ...children) {
  return el("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

// A page's main content, replaced whole; focus moves to it for screen readers.
export function render(title, ...children) {
  document.title = title ? `${title} · Usher` : "Usher";
  const main = document.getElementById("main");
  main.replaceChildren(...children);
}

export const TIER_COLOURS = ["#6d28d9", "#1d4ed8", "#0f766e", "#b45309", "#be185d", "#4d7c0f", "#0e7490", "#9f1239"];
export const tierColour = (tier) => TIER_COLOURS[(Math.max(1, tier) - 1) % TIER_COLOURS.length];
