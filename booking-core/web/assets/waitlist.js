// waitlist.js: My waitlist (/me/waitlist): the fan's places on sold-out
// events' waitlists, and the seats held for them when some came back (an
// offer is a hold: paid for with the same form as any hold, before it
// runs out and the seats go to the next fan). Also the event page's
// "Join the waitlist" form.

import { api, el, money, notice, render, session, when, ApiError } from "/assets/api.js";
import { payForm } from "/assets/checkout.js";

const STATES = {
  waiting: "Waiting",
  offered: "Seats held for you",
  bought: "Bought",
  lapsed: "Offer ran out",
  left: "Left",
};

export async function waitlistPage() {
  if (!session.token) {
    render("My waitlist", el("h1", {}, "My waitlist"),
      el("p", {}, el("a", { href: "/sign-in?next=/me/waitlist" }, "Sign in"), " to see your waitlist."));
    return;
  }
  const { data } = await api("/v1/waitlist");
  const list = el("ul", { class: "waitlist" });
  for (const entry of data.items) list.append(await entryCard(entry));
  render("My waitlist", el("h1", {}, "My waitlist"),
    data.items.length ? list : el("p", { class: "muted" }, "You are on no waitlist. Sold-out events offer one on their page."));
  // Offers come while the page is open: look again every few seconds.
  const waiting = data.items.some((e) => e.state === "waiting");
  if (waiting) setTimeout(() => { if (!document.querySelector("form.pay input:focus")) waitlistPage(); }, 5000);
}

async function entryCard(entry) {
  const { data: event } = await api(`/v1/events/${entry.event_id}`);
  const what = `${entry.quantity} seat${entry.quantity > 1 ? "s" : ""}`
    + (entry.tier ? `, tier ${entry.tier}` : "")
    + (entry.max_price_cents != null ? `, at most ${money(entry.max_price_cents)} a seat` : "");
  const card = el("li", { class: "entry" },
    el("h2", {}, el("a", { href: `/events/${entry.event_id}` }, event.title)),
    el("p", { class: "muted" }, `${when(event.starts_at, event.venue.timezone)} · ${what}`),
    el("p", {}, el("strong", {}, STATES[entry.state] || entry.state),
      entry.state === "waiting" ? ` · ${entry.ahead} ahead of you` : ""));
  if (entry.state === "offered") {
    const until = new Date(entry.offer.expires_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    card.append(
      notice("ok", `Seats came back and are held for you until ${until}: ${money(entry.offer.total_cents)} in all.`),
      payForm({
        scope: entry.offer.hold_id,
        total: entry.offer.total_cents,
        body: (pm) => ({ hold_id: entry.offer.hold_id, payment_method: pm }),
        onDone: (order) => card.append(el("p", {}, el("a", { href: `/me/orders/${order.order_id}` }, "Your tickets"))),
      }));
  }
  if (entry.state === "waiting" || entry.state === "offered") {
    const leave = el("button", { type: "button", class: "secondary" }, "Leave the waitlist");
    leave.addEventListener("click", async () => {
      leave.disabled = true;
      await api(`/v1/waitlist/${entry.entry_id}`, { method: "DELETE" });
      waitlistPage();
    });
    card.append(el("p", {}, leave));
  }
  return card;
}

/// The event page's form: join its waitlist (refused while seats are on
/// sale, with the reason shown).
export function joinForm(event) {
  const status = el("div", { "aria-live": "polite" });
  const max = event.rules.max_seats_per_fan;
  const form = el("form", { class: "join-waitlist" },
    el("label", { for: "wl-quantity" }, "Sold out? Join the waitlist for"),
    el("input", { id: "wl-quantity", name: "quantity", type: "number", min: 1, max, value: 1, required: true }),
    el("span", {}, " seats "),
    el("button", { type: "submit", class: "secondary" }, "Join the waitlist"),
    status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!session.token) {
      location.href = `/sign-in?next=${encodeURIComponent(location.pathname)}`;
      return;
    }
    try {
      await api(`/v1/events/${event.id}/waitlist`, { method: "POST", body: { quantity: Number(form.quantity.value) } });
      location.href = "/me/waitlist";
    } catch (err) {
      const why = err instanceof ApiError && err.code === "not_sold_out"
        ? "Seats are still on sale: find seats instead."
        : err instanceof ApiError ? err.message : String(err);
      status.replaceChildren(notice("error", why));
    }
  });
  return form;
}
