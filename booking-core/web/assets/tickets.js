// tickets.js: My tickets. Each valid ticket shows its QR code (the rotating
// code, redrawn every 30 seconds, so a screenshot of it soon stops working),
// a PDF to download, a transfer to another fan and a resale listing within
// the event's cap. QR images and PDFs need the fan's token, so they are
// fetched and shown from blob URLs rather than linked.

import { api, el, money, newKey, notice, render, session, when, ApiError } from "/assets/api.js";

async function blobOf(path) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${session.token}` } });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
  return r.blob();
}

/// The ticket's QR code as an image; rotating codes refresh themselves.
export async function qrImage(ticketId, label, rotating = true) {
  const img = el("img", { class: "qr", alt: `QR code for ${label}`, width: 220, height: 220 });
  let url = null;
  const load = async () => {
    if (!img.isConnected && url) return false;
    try {
      const next = URL.createObjectURL(await blobOf(`/v1/tickets/${ticketId}/qr.svg${rotating ? "?rotating=true" : ""}`));
      img.src = next;
      if (url) URL.revokeObjectURL(url);
      url = next;
      img.dataset.loaded = "true";
    } catch {
      img.alt = `The QR code for ${label} could not be loaded; it is in the PDF.`;
    }
    return true;
  };
  await load();
  if (rotating) {
    const timer = setInterval(async () => { if (!(await load())) clearInterval(timer); }, 30_000);
  }
  return img;
}

export async function ticketsPage() {
  if (!session.token) {
    render("My tickets", el("h1", {}, "My tickets"),
      el("p", {}, el("a", { href: "/sign-in?next=/me/tickets" }, "Sign in"), " to see your tickets."));
    return;
  }
  const { data: tickets } = await api("/v1/me/tickets");
  const byEvent = new Map();
  for (const t of tickets) {
    if (!byEvent.has(t.event_id)) byEvent.set(t.event_id, []);
    byEvent.get(t.event_id).push(t);
  }
  const sections = [];
  for (const [eventId, list] of byEvent) {
    const { data: event } = await api(`/v1/events/${eventId}`);
    const labels = await seatLabels(event.seatmap_url);
    const ul = el("ul", { class: "tickets" });
    sections.push(el("section", {},
      el("h2", {}, el("a", { href: `/events/${eventId}` }, event.title)),
      el("p", { class: "muted" }, `${event.venue.name}, ${event.venue.city} · ${when(event.starts_at, event.venue.timezone)}`),
      ul));
    for (const t of list) ul.append(await ticketCard(t, labels.get(t.seat_id) || `Seat ${t.seat_id}`));
  }
  render("My tickets", el("h1", {}, "My tickets"),
    ...(tickets.length ? sections : [el("p", {}, "No tickets yet. ", el("a", { href: "/" }, "Find an event"))]));
}

// Seat labels from the venue's seat map (cached by the browser after the seat page).
export async function seatLabels(url) {
  const labels = new Map();
  try {
    const doc = await (await fetch(url)).json();
    for (const s of doc.sections) for (const r of s.rows) for (const [id, label] of r.seats) labels.set(id, `${s.name}, row ${r.label}, seat ${label}`);
  } catch { /* labels are a nicety; ids still identify seats */ }
  return labels;
}

// What a ticket that is no longer valid means, in a sentence.
const NOT_VALID = {
  voided_disputed: "The payment for this ticket was disputed with your bank (a chargeback), so the ticket is void and will not get you in. If the bank decides for the payment, it becomes valid again.",
  refunded: "This ticket was refunded.",
};

async function ticketCard(t, label) {
  const state = t.state === "voided_disputed" ? "void (payment disputed)" : t.state !== "valid" ? t.state : t.checked_in_at ? "checked in" : "valid";
  const card = el("li", { class: "ticket", "data-ticket": t.ticket_id },
    el("h3", {}, label),
    el("p", {}, "Ticket ", el("span", { class: "state" }, state), ` · ${money(t.price_cents)}`));
  if (t.state !== "valid") {
    if (NOT_VALID[t.state]) card.append(el("p", { class: "muted", "data-why": t.state }, NOT_VALID[t.state]));
    return card;
  }
  card.append(await qrImage(t.ticket_id, label));
  const status = el("div", { "aria-live": "polite" });

  const pdf = el("button", { type: "button", class: "secondary" }, "Download PDF");
  pdf.addEventListener("click", async () => {
    try {
      const url = URL.createObjectURL(await blobOf(`/v1/tickets/${t.ticket_id}/ticket.pdf`));
      const a = el("a", { href: url, download: `ticket-${t.ticket_id}.pdf` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      status.replaceChildren(notice("error", err.message));
    }
  });

  const transfer = el("form", {},
    el("label", { for: `to-${t.ticket_id}` }, "Give this ticket to (fan id)"),
    el("div", { class: "row" }, el("input", { id: `to-${t.ticket_id}`, name: "to", required: true, autocomplete: "off" }),
      el("button", { type: "submit", class: "secondary" }, "Transfer")));
  transfer.addEventListener("submit", async (e) => {
    e.preventDefault();
    const to = transfer.to.value.trim();
    if (!to || !confirm(`Give this ticket to ${to}? Its QR code stops working for you.`)) return;
    try {
      await api(`/v1/tickets/${t.ticket_id}/transfer`, { method: "POST", key: newKey(`transfer-${t.ticket_id}`), body: { to_fan_id: to } });
      card.replaceChildren(el("h3", {}, label), notice("ok", `Transferred to ${to}.`));
    } catch (err) {
      status.replaceChildren(notice("error", err.message));
    }
  });

  const resale = el("form", {},
    el("label", { for: `price-${t.ticket_id}` }, `Sell on resale (face value ${money(t.price_cents)})`),
    el("div", { class: "row" }, el("input", { id: `price-${t.ticket_id}`, name: "price", type: "number", min: "1", step: "0.01", inputmode: "decimal", required: true }),
      el("button", { type: "submit", class: "secondary" }, "List")));
  resale.addEventListener("submit", async (e) => {
    e.preventDefault();
    const cents = Math.round(Number(resale.price.value) * 100);
    try {
      const { data } = await api(`/v1/tickets/${t.ticket_id}/listings`, { method: "POST", key: newKey(`list-${t.ticket_id}`), body: { price_cents: cents } });
      status.replaceChildren(notice("ok", `Listed for ${money(data.price_cents)}. `, el("a", { href: `/events/${t.event_id}/resale` }, "See resale listings")));
    } catch (err) {
      status.replaceChildren(notice("error", err.message));
    }
  });

  card.append(el("p", {}, pdf), transfer, resale, status);
  return card;
}
