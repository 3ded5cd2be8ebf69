// catalog.js: the pages before a fan picks seats: search with paged results,
// an event's page (tiers, prices, the on-sale countdown on the server's
// clock, the waitlist when sold out), and an event's resale listings.

import { api, clock, el, money, notice, render, serverClock, session, tierColour, when, ApiError } from "/assets/api.js";
import { payForm } from "/assets/checkout.js";
import { joinForm } from "/assets/waitlist.js";

const CATEGORIES = ["concert", "sports", "theatre", "comedy", "family", "festival"];

export async function homePage() {
  const params = new URLSearchParams(location.search);
  const field = (id, label, attrs = {}) => [
    el("label", { for: id }, label),
    el("input", { id, name: id, value: params.get(id) || "", ...attrs }),
  ];
  const form = el("form", { role: "search", action: "/", method: "get" },
    el("div", { class: "row" },
      el("div", {}, ...field("q", "Artist, event, venue or city", { type: "search" })),
      el("div", {}, ...field("city", "City")),
      el("div", {},
        el("label", { for: "category" }, "Category"),
        el("select", { id: "category", name: "category" },
          el("option", { value: "" }, "Any"),
          CATEGORIES.map((c) => el("option", { value: c, selected: params.get("category") === c }, c[0].toUpperCase() + c.slice(1))))),
      el("div", {}, ...field("from", "From", { type: "date" })),
      el("div", {}, ...field("to", "Until", { type: "date" })),
      el("button", { type: "submit" }, "Search")));

  const query = new URLSearchParams();
  for (const k of ["q", "city", "category", "from", "to", "cursor"]) if (params.get(k)) query.set(k, params.get(k));
  query.set("limit", "12");
  const results = el("section", { "aria-labelledby": "results-title" }, el("h2", { id: "results-title" }, "Events"));
  render("Events", el("h1", {}, "Find tickets"), form, results);
  try {
    const { data } = await api(`/v1/events?${query}`);
    if (data.items.length === 0) {
      results.append(el("p", {}, "No events match. Try fewer words or other dates."));
    } else {
      results.append(el("ul", { class: "cards" }, data.items.map(eventCard)));
    }
    const pager = el("div", { class: "pager" });
    if (params.get("cursor")) pager.append(el("button", { type: "button", class: "secondary", onclick: () => history.back() }, "← Previous"));
    if (data.next_cursor) {
      const next = new URLSearchParams(params);
      next.set("cursor", data.next_cursor);
      pager.append(el("a", { class: "button secondary", href: `/?${next}`, rel: "next" }, "Next page →"));
    }
    results.append(pager);
  } catch (err) {
    results.append(notice("error", err.message));
  }
}

function eventCard(e) {
  const price = e.price_min_cents === e.price_max_cents ? money(e.price_min_cents) : `${money(e.price_min_cents)} – ${money(e.price_max_cents)}`;
  return el("li", { class: "card" },
    el("h3", {}, el("a", { class: "title", href: `/events/${e.id}` }, e.title)),
    el("p", {}, e.artist),
    el("p", { class: "muted" }, `${e.venue.name}, ${e.venue.city}`, el("br"), when(e.starts_at, e.venue.timezone)),
    el("p", {}, el("strong", {}, price), ` · ${e.category}`));
}

export async function eventPage(id) {
  const { data: e } = await api(`/v1/events/${id}`);
  const now = serverClock(e.server_time);
  const onSaleAt = new Date(e.on_sale_at).getTime();
  const countdown = el("span", { class: "countdown" });
  const action = el("div", { class: "actions" });
  const status = el("div", { "aria-live": "polite" });
  const find = el("a", { class: "button", href: `/events/${id}/seats` }, "Find seats");

  function tick() {
    const left = (onSaleAt - now()) / 1000;
    if (e.cancelled) {
      status.replaceChildren(notice("error", "This event is cancelled. Ticket holders are refunded."));
      action.replaceChildren();
      return false;
    }
    if (left > 0) {
      countdown.textContent = clock(left);
      if (!status.firstChild) status.replaceChildren(el("p", {}, "On sale in ", countdown));
      action.replaceChildren(el("button", { type: "button", disabled: true }, "Not on sale yet"));
      return true;
    }
    status.replaceChildren(el("p", {}, e.rules.protected
      ? "On sale now. You may wait in a short online queue first: keep the page open and you'll be taken to the seats."
      : "On sale now."));
    action.replaceChildren(find, el("a", { class: "button secondary", href: `/events/${id}/resale` }, "Resale tickets"), joinForm(e));
    return false;
  }
  if (tick()) {
    const timer = setInterval(() => { if (!tick()) clearInterval(timer); }, 1000);
  }

  render(e.title,
    el("h1", {}, e.title),
    el("p", {}, el("strong", {}, e.artist), ` · ${e.category}`),
    el("p", {}, `${e.venue.name}, ${e.venue.city}`, el("br"), when(e.starts_at, e.venue.timezone)),
    e.description ? el("p", {}, e.description) : null,
    status,
    action,
    el("h2", {}, "Prices"),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Tier"), el("th", { scope: "col" }, "Price per seat"))),
      el("tbody", {}, e.tiers.map((t) => {
        const dot = el("span", { class: "tier-dot", "aria-hidden": "true" });
        dot.style.background = tierColour(t.tier);
        return el("tr", {}, el("td", {}, dot, t.name), el("td", {}, money(t.price_cents)));
      }))),
    el("p", { class: "muted" }, `Up to ${e.rules.max_seats_per_fan} seats per fan. Seats are held for ${Math.round(e.rules.hold_ttl_secs / 60)} minutes while you pay.`));
}

export async function resalePage(id) {
  const [{ data: e }, { data: listings }] = await Promise.all([api(`/v1/events/${id}`), api(`/v1/events/${id}/listings`)]);
  const list = el("ul", { class: "cards" });
  const status = el("div", { "aria-live": "polite" });
  const open = listings.filter((l) => l.state === "listed");
  for (const l of open) {
    const buy = el("button", { type: "button" }, `Buy for ${money(l.price_cents)}`);
    const card = el("li", { class: "card" },
      el("h3", {}, `Seat ${l.seat_id}`),
      el("p", {}, `${money(l.price_cents)} `, el("span", { class: "muted" }, `(face value ${money(l.face_value_cents)})`)),
      buy);
    buy.addEventListener("click", () => {
      if (!session.token) { location.href = `/sign-in?next=${encodeURIComponent(location.pathname)}`; return; }
      buy.remove();
      card.append(payForm({
        total: l.price_cents,
        scope: `listing-${l.listing_id}`,
        body: (pm) => ({ listing_id: l.listing_id, payment_method: pm }),
        onDone: () => card.append(notice("ok", "Bought. ", el("a", { href: "/me/tickets" }, "See your ticket"))),
      }));
    });
    list.append(card);
  }
  render(`Resale: ${e.title}`,
    el("h1", {}, "Resale tickets"),
    el("p", {}, el("a", { href: `/events/${id}` }, e.title), ` · ${e.venue.name}`),
    el("p", { class: "muted" }, "Fans selling tickets they can't use, within the event's price cap. The old ticket's code stops working when you buy."),
    status,
    open.length ? list : el("p", {}, "No tickets are listed for resale right now."));
}

export { ApiError };
