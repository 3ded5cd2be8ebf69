// app.js: the fan app's entry. Every page is a real URL (so the edge's
// waiting-room rules apply to pages as to the API, and back/forward and
// reloads just work); this picks the page for the path and shows who is
// signed in.

import { api, config, el, notice, render, session, ApiError } from "/assets/api.js";
import { homePage, eventPage, resalePage } from "/assets/catalog.js";
import { seatsPage } from "/assets/seats.js";
import { ticketsPage } from "/assets/tickets.js";
import { orderPage } from "/assets/orders.js";
import { waitlistPage } from "/assets/waitlist.js";

const routes = [
  [/^\/$/, homePage],
  [/^\/sign-in$/, signInPage],
  [/^\/me\/tickets$/, ticketsPage],
  [/^\/me\/waitlist$/, waitlistPage],
  [/^\/me\/orders\/([0-9a-f-]{36})$/, orderPage],
  [/^\/events\/(\d+)$/, eventPage],
  [/^\/events\/(\d+)\/seats$/, seatsPage],
  [/^\/events\/(\d+)\/resale$/, resalePage],
];

function showWho() {
  const who = document.getElementById("who");
  const fan = session.fan;
  if (session.token && fan) {
    who.replaceChildren(
      el("span", {}, "Signed in as ", el("strong", {}, fan.name || fan.fan_id), " "),
      el("button", { class: "link", type: "button", onclick: () => { session.signOut(); location.href = "/"; } }, "Sign out"),
    );
  } else {
    const back = encodeURIComponent(location.pathname + location.search);
    who.replaceChildren(el("a", { href: `/sign-in?next=${back}` }, "Sign in"));
  }
}

// Only paths of this site: never an open redirect.
export function safeNext(raw) {
  return raw && raw.startsWith("/") && !raw.startsWith("//") ? raw : "/";
}

// The local stack's sign-in: any fan id gets a token from the core's
// development issuer. A real deployment signs fans in with its identity
// provider and lands them back here with a token.
function signInPage() {
  const next = safeNext(new URLSearchParams(location.search).get("next"));
  if (!config.dev_sign_in) {
    render("Sign in", el("h1", {}, "Sign in"), notice("", "Sign in with your ticketing account; this deployment has no development sign-in."));
    return;
  }
  const status = el("div", { "aria-live": "polite" });
  const form = el("form", {},
    el("label", { for: "fan-id" }, "Fan id"),
    el("input", { id: "fan-id", name: "fan_id", autocomplete: "username", required: true, pattern: "[A-Za-z0-9._@\\-]{1,64}", "aria-describedby": "fan-help" }),
    el("p", { id: "fan-help", class: "muted" }, "Letters, digits and . _ @ - (local stack: any id signs you in)."),
    el("label", { for: "fan-name" }, "Your name (optional)"),
    el("input", { id: "fan-name", name: "name", autocomplete: "name" }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fan_id = form.fan_id.value.trim();
    const name = form.name.value.trim() || undefined;
    try {
      const { data } = await api("/v1/dev/sign-in", { method: "POST", body: { fan_id, name } });
      session.signIn(data.token, { fan_id, name });
      location.href = next;
    } catch (err) {
      status.replaceChildren(notice("error", err instanceof ApiError ? err.message : String(err)));
    }
  });
  render("Sign in", el("h1", {}, "Sign in"), form);
  form.fan_id.focus();
}

async function main() {
  const path = location.pathname;
  if (path === "/portal" || path.startsWith("/portal/")) {
    // The operators' pages, loaded only here.
    const { portal } = await import("/assets/portal.js");
    try {
      await portal(path);
    } catch (err) {
      render("Something went wrong", el("h1", {}, "Something went wrong"),
        notice("error", err instanceof ApiError ? `${err.message} (${err.code})` : String(err)));
    }
    return;
  }
  showWho();
  for (const [pattern, page] of routes) {
    const m = path.match(pattern);
    if (m) {
      try {
        // Event ids are numbers; order ids stay strings.
        await page(...m.slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p)));
      } catch (err) {
        render("Something went wrong", el("h1", {}, "Something went wrong"),
          notice("error", err instanceof ApiError ? `${err.message} (${err.code})` : String(err)));
      }
      return;
    }
  }
  render("Not found", el("h1", {}, "Page not found"), el("p", {}, el("a", { href: "/" }, "Find events")));
}

main();
