// seats.js: an event's seat page, where a fan picks seats (on the map or
// "best available"), holds them, and pays before the hold runs out. The map
// stays live over the core's seat-change stream: a seat someone else takes
// turns unavailable within a second or two, with no reload.
//
// The hold survives a reload or a dropped connection (its id is kept in
// sessionStorage and read back); leaving through the page's own links, or the
// Release button, gives the seats back at once.

import { api, clock, el, money, newKey, notice, render, serverClock, session, ApiError } from "/assets/api.js";
import { payForm, resumePayment } from "/assets/checkout.js";
import { SeatMap, swatch } from "/assets/seatmap.js";
import { qrImage } from "/assets/tickets.js";

export async function seatsPage(eventId) {
  const started = performance.now();
  const { data: event } = await api(`/v1/events/${eventId}`);
  const prices = new Map(event.tiers.map((t) => [t.tier, t]));
  // The chart (cached for a day) and the seats' states now, side by side;
  // the live stream then keeps the states current.
  const [doc, now] = await Promise.all([
    fetch(event.seatmap_url).then(async (r) => {
      if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
      return r.json();
    }),
    api(`/v1/events/${eventId}/availability`).then((r) => r.data).catch(() => null),
  ]);
  performance.mark("seatmap-data");

  const panel = el("div", { class: "panel" });
  const selection = el("section", { "aria-labelledby": "sel-title" });
  const holdBox = el("section", { "aria-labelledby": "hold-title", hidden: true });
  const live = el("div", { "aria-live": "assertive" });
  const storeKey = `usher.hold.${eventId}`;
  let hold = null, holdTimer = null, purchased = false;

  const map = new SeatMap(doc, {
    tierName: (t) => prices.get(t)?.name ?? `Tier ${t}`,
    price: (t) => prices.get(t)?.price_cents ?? 0,
    maxSelect: event.rules.max_seats_per_fan,
    onSelectionChange: () => showSelection(),
    onReady: () => {
      // For the benchmark: navigation to an interactive, live map.
      performance.measure("seatmap-interactive", { start: 0, end: performance.now() });
      document.documentElement.dataset.seatmap = "ready";
      document.documentElement.dataset.seatmapMs = String(Math.round(performance.now()));
      document.documentElement.dataset.seatmapSinceScript = String(Math.round(performance.now() - started));
    },
  });

  // ---- the live feed --------------------------------------------------------
  let stream = null;
  function openStream() {
    stream = new EventSource(`/v1/events/${eventId}/seat-changes`);
    stream.addEventListener("snapshot", (e) => {
      const snap = JSON.parse(e.data);
      taken(map.setSnapshot(snap.states));
      setPrices(snap.prices);
    });
    stream.addEventListener("prices", (e) => setPrices(JSON.parse(e.data).prices));
    stream.addEventListener("seats", (e) => taken(map.applyBatch(JSON.parse(e.data))));
    stream.addEventListener("reset", () => { stream.close(); setTimeout(openStream, 500); });
    stream.onerror = () => {
      // EventSource retries by itself (resuming from Last-Event-ID); it gives
      // up only when refused, e.g. when the fan's admission has ended.
      if (stream.readyState === EventSource.CLOSED && !purchased) {
        live.replaceChildren(notice("error", "Live seat updates stopped. ",
          el("a", { href: `/events/${eventId}/seats` }, "Reload the seats"), event.rules.protected ? " (you may be asked to wait in line again)." : "."));
      }
    };
  }
  // Under dynamic pricing a tier's price moves; the stream says when. Only
  // what new choices cost changes: a hold keeps the price it was made at.
  function setPrices(list) {
    let changed = false;
    for (const t of list ?? []) {
      const known = prices.get(t.tier);
      if (known && known.price_cents !== t.price_cents) { known.price_cents = t.price_cents; changed = true; }
    }
    if (!changed) return;
    for (const o of best.tier.options) {
      const t = prices.get(Number(o.value));
      if (t) o.textContent = `${t.name} · ${money(t.price_cents)}`;
    }
    for (const li of legend.querySelectorAll("li[data-tier]")) {
      const t = prices.get(Number(li.dataset.tier));
      li.replaceChildren(swatch("tier", t.tier), `${t.name} ${money(t.price_cents)}`);
    }
    if (!hold) showSelection();
    map.request();
  }
  function taken(lost) {
    if (lost?.length) {
      live.replaceChildren(notice("error", `Sorry, ${lost.length === 1 ? "a seat you picked was" : `${lost.length} seats you picked were`} just taken by someone else: ${lost.map((i) => map.place(i)).join("; ")}.`));
    }
  }

  // ---- choosing -------------------------------------------------------------
  const best = el("form", { class: "best" },
    el("div", { class: "row" },
      el("div", {},
        el("label", { for: "best-tier" }, "Tier"),
        el("select", { id: "best-tier", name: "tier" },
          el("option", { value: "" }, "Any tier"),
          event.tiers.map((t) => el("option", { value: t.tier }, `${t.name} · ${money(t.price_cents)}`)))),
      el("div", {},
        el("label", { for: "best-qty" }, "Seats"),
        el("select", { id: "best-qty", name: "quantity" },
          Array.from({ length: event.rules.max_seats_per_fan }, (_, i) => el("option", { value: i + 1, selected: i === 1 }, String(i + 1)))))),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "accessible" }), "Wheelchair-accessible seats"),
    el("p", {}, el("button", { type: "submit" }, "Find best seats")));
  best.addEventListener("submit", (e) => {
    e.preventDefault();
    const tier = best.tier.value ? Number(best.tier.value) : undefined;
    placeHold({ best_available: { quantity: Number(best.quantity.value), tier, accessible: best.accessible.checked || undefined } });
  });

  function showSelection() {
    for (const b of best.querySelectorAll("button")) b.disabled = false;
    const seats = [...map.selected].map((i) => map.seat(i));
    const total = seats.reduce((n, s) => n + (prices.get(s.tier)?.price_cents ?? 0), 0);
    selection.replaceChildren(
      el("h2", { id: "sel-title" }, "Your selection"),
      seats.length === 0
        ? el("p", { class: "muted" }, "Pick seats on the map (tap a section to zoom in), or let us find the best ones.")
        : el("ul", { class: "selection" }, seats.map((s) => el("li", {},
          el("span", {}, `${s.section}, row ${s.row}, seat ${s.label}`, el("br"), el("small", {}, `${prices.get(s.tier)?.name} · ${money(prices.get(s.tier)?.price_cents ?? 0)}`)),
          el("button", { type: "button", class: "link", "aria-label": `Remove ${s.section} row ${s.row} seat ${s.label}`, onclick: () => map.toggle(s.index) }, "Remove")))),
      seats.length ? el("p", { class: "total" }, `Total ${money(total)}`) : "",
      el("p", {}, el("button", { type: "button", id: "hold-button", disabled: seats.length === 0, onclick: () => placeHold({ seat_ids: seats.map((s) => s.id) }) },
        seats.length ? `Hold ${seats.length} seat${seats.length > 1 ? "s" : ""}` : "Hold seats")),
      el("h3", {}, "Or: best available"), best);
  }

  // ---- holding --------------------------------------------------------------
  async function placeHold(body) {
    if (!session.token) {
      live.replaceChildren(notice("error", "Sign in to hold seats. ", el("a", { href: `/sign-in?next=${encodeURIComponent(location.pathname)}` }, "Sign in")));
      return;
    }
    for (const b of panel.querySelectorAll("button")) b.disabled = true;
    live.replaceChildren(el("p", { class: "muted" }, "Holding your seats…"));
    try {
      const { data } = await api(`/v1/events/${eventId}/holds`, { method: "POST", key: newKey(`hold-${eventId}`), body });
      map.clearSelection();
      live.replaceChildren();
      showHold(data);
    } catch (err) {
      showSelection();
      if (err.code === "seats_taken") {
        const gone = (err.problem.taken_seat_ids || err.problem.seat_ids || []).map((id) => map.index.get(id)).filter((i) => i !== undefined);
        for (const i of gone) map.selected.delete(i);
        showSelection();
        live.replaceChildren(notice("error", "Someone else just took ", gone.length ? gone.map((i) => map.place(i)).join("; ") : "one of those seats", ". Pick others and try again."));
      } else if (err.code === "admission_required") {
        live.replaceChildren(notice("error", "Your turn to shop has ended. ", el("a", { href: `/queue/${eventId}` }, "Join the line again")));
      } else {
        live.replaceChildren(notice("error", `${err.message}`));
      }
    }
  }

  function showHold(h) {
    hold = h;
    sessionStorage.setItem(storeKey, h.hold_id);
    map.setMine(h.seats.map((s) => s.seat_id));
    selection.hidden = true;
    holdBox.hidden = false;
    const now = serverClock(h.server_time);
    const expires = new Date(h.expires_at).getTime();
    const countdown = el("span", { class: "countdown", role: "timer", "aria-live": "off" });
    const release = el("button", { type: "button", class: "secondary", onclick: () => releaseHold("You released the seats.") }, "Release seats");
    const pay = payForm({
      scope: h.hold_id,
      total: h.total_cents,
      body: (pm) => ({ hold_id: h.hold_id, payment_method: pm }),
      onDone: (order) => done(order),
    });
    holdBox.replaceChildren(
      el("h2", { id: "hold-title" }, "Your seats are held"),
      el("ul", { class: "selection" }, h.seats.map((s) => el("li", {}, `${s.section}, row ${s.row}, seat ${s.seat}`, el("span", {}, money(s.price_cents))))),
      el("p", { class: "total" }, `Total ${money(h.total_cents)}`),
      el("p", {}, "Time left to pay: ", countdown),
      pay,
      el("p", {}, release));
    clearInterval(holdTimer);
    let warned = false;
    const tick = () => {
      const left = (expires - now()) / 1000;
      countdown.textContent = clock(left);
      if (left <= 60 && !warned) { warned = true; live.replaceChildren(notice("", "One minute left to pay for your seats.")); }
      if (left <= 0 && !purchased) {
        clearInterval(holdTimer);
        endHold();
        live.replaceChildren(notice("error", "Your hold ran out and the seats went back on sale. Choose seats again."));
      }
    };
    tick();
    holdTimer = setInterval(tick, 250);
    holdBox.querySelector("input")?.focus();
  }

  function endHold() {
    hold = null;
    sessionStorage.removeItem(storeKey);
    clearInterval(holdTimer);
    map.setMine([]);
    holdBox.hidden = true;
    selection.hidden = false;
    showSelection();
  }

  async function releaseHold(message) {
    const h = hold;
    if (!h) return;
    endHold();
    try {
      await api(`/v1/holds/${h.hold_id}`, { method: "DELETE", key: newKey(`release-${h.hold_id}`), keepalive: true });
      if (message) live.replaceChildren(notice("", message));
    } catch (err) {
      if (message) live.replaceChildren(notice("error", err.message));
    }
  }

  async function done(order) {
    purchased = true;
    clearInterval(holdTimer);
    sessionStorage.removeItem(storeKey);
    stream?.close();
    const tickets = el("ul", { class: "tickets" });
    holdBox.replaceChildren(
      el("h2", { id: "hold-title", tabindex: "-1" }, "You're going!"),
      notice("ok", `Order confirmed: ${order.tickets.length} ticket${order.tickets.length > 1 ? "s" : ""}, ${money(order.total_cents)}.`),
      tickets,
      el("p", {}, el("a", { class: "button", href: "/me/tickets" }, "All my tickets")));
    holdBox.querySelector("h2").focus();
    for (const t of order.tickets) {
      const i = map.index.get(t.seat_id);
      const label = i === undefined ? `Seat ${t.seat_id}` : map.place(i);
      tickets.append(el("li", { class: "ticket" }, el("p", {}, label), await qrImage(t.ticket_id, label)));
    }
  }

  // Leaving through the page's own links gives the seats back.
  document.addEventListener("click", (e) => {
    const a = e.target.closest?.("a[href]");
    if (!a || !hold || purchased || a.target === "_blank") return;
    if (!confirm("Leave this page and release your held seats?")) { e.preventDefault(); return; }
    releaseHold();
  });

  const legend = el("ul", { class: "legend", "aria-label": "Map key" },
    event.tiers.map((t) => el("li", { "data-tier": t.tier }, swatch("tier", t.tier), `${t.name} ${money(t.price_cents)}`)),
    el("li", {}, swatch("accessible"), "Wheelchair accessible (square)"),
    el("li", {}, swatch("obstructed"), "Obstructed view (triangle)"),
    el("li", {}, swatch("selected"), "Selected (ringed)"),
    el("li", {}, swatch("mine"), "Held for you"),
    el("li", {}, swatch("gone"), "Taken (small ring)"));

  panel.append(live, selection, holdBox, el("section", {}, el("h2", {}, "Key"), legend));
  render(`Seats: ${event.title}`,
    el("h1", {}, event.title),
    el("p", { class: "muted" }, `${event.venue.name}, ${event.venue.city} · `, el("a", { href: `/events/${eventId}` }, "Event details")),
    el("div", { class: "seats-layout" }, map.element, panel));
  showSelection();
  if (now) map.setSnapshot(now.states);
  openStream();

  // A hold from before a reload comes back if it is still live.
  const kept = sessionStorage.getItem(storeKey);
  if (kept && session.token) {
    try {
      const { data } = await api(`/v1/holds/${kept}`);
      if (data.state === "active" && new Date(data.expires_at) > new Date(data.server_time)) {
        showHold(data);
      } else {
        sessionStorage.removeItem(storeKey);
        // Sold while the page reloaded: show what the payment made.
        const order = await resumePayment(kept);
        if (order?.state === "confirmed") {
          selection.hidden = true;
          holdBox.hidden = false;
          done(order);
        }
      }
    } catch {
      sessionStorage.removeItem(storeKey);
    }
  }
}
