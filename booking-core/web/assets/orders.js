// orders.js: one order's page (/me/orders/{id}), where the bank's 3-D Secure
// page sends the fan back. It asks the order until it is final (the bank's
// answer reaches Usher by the provider's webhook, moments later) and shows
// what came of it: the tickets, or why nothing was charged.

import { api, el, money, notice, render, session, when } from "/assets/api.js";
import { challengeUrl } from "/assets/checkout.js";
import { qrImage, seatLabels } from "/assets/tickets.js";

const FINAL = new Set(["confirmed", "payment_failed", "refunded"]);

// Why an order failed, in the fan's words.
const FAILURES = {
  authentication_failed: "Your bank did not confirm the payment, so nothing was charged. Your seats are still held: try again or use another card.",
  authentication_abandoned: "The payment was not confirmed in time, so nothing was charged and the seats went back on sale.",
  payment_timed_out: "The payment did not complete in time, so nothing was charged and the seats went back on sale.",
};

export async function orderPage(orderId) {
  if (!session.token) {
    const back = encodeURIComponent(location.pathname);
    render("Your order", el("h1", {}, "Your order"),
      el("p", {}, el("a", { href: `/sign-in?next=${back}` }, "Sign in"), " to see this order."));
    return;
  }
  const title = el("h1", { id: "order-title", tabindex: "-1" }, "Your order");
  const status = el("div", { "aria-live": "polite" });
  const body = el("div", {});
  render("Your order", title, status, body);
  let { data: order } = await api(`/v1/orders/${orderId}`);
  // Poll until the webhook has finished it: fast at first (it is usually
  // moments), then slower, never past the payment's deadline by much.
  for (let i = 0; !FINAL.has(order.state); i++) {
    showWaiting(order, status);
    await new Promise((r) => setTimeout(r, i < 40 ? 250 : 2000));
    ({ data: order } = await api(`/v1/orders/${orderId}`));
  }
  if (order.state === "confirmed") {
    title.textContent = "You're going!";
    status.replaceChildren(notice("ok",
      `Order confirmed: ${order.tickets.length} ticket${order.tickets.length > 1 ? "s" : ""}, ${money(order.total_cents)}.`));
    const { data: event } = await api(`/v1/events/${order.event_id}`);
    const labels = await seatLabels(event.seatmap_url);
    const tickets = el("ul", { class: "tickets" });
    body.replaceChildren(
      el("p", { class: "muted" }, `${event.title} · ${when(event.starts_at, event.venue.timezone)}`),
      tickets,
      el("p", {}, el("a", { class: "button", href: "/me/tickets" }, "All my tickets")));
    title.focus();
    for (const t of order.tickets) {
      const label = labels.get(t.seat_id) || `Seat ${t.seat_id}`;
      tickets.append(el("li", { class: "ticket" }, el("p", {}, label), await qrImage(t.ticket_id, label)));
    }
    return;
  }
  title.textContent = order.state === "payment_failed" ? "Payment not completed" : "Payment refunded";
  const why = order.state === "payment_failed"
    ? FAILURES[order.failure_code] || `Your card was declined (${order.failure_code || "declined"}). Nothing was charged.`
    : `The seats could not be sold (${order.refund_reason || order.state}); your payment has been refunded.`;
  status.replaceChildren(notice("error", why));
  body.replaceChildren(el("p", {}, el("a", { class: "button", href: `/events/${order.event_id}/seats` }, "Back to the seats")));
  title.focus();
}

function showWaiting(order, status) {
  const until = order.payment_deadline
    ? ` We keep your seats until ${new Date(order.payment_deadline).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}.`
    : "";
  const challenge = challengeUrl(order);
  // Back from the bank with its answer on the way: just wait for it.
  const answered = new URLSearchParams(location.search).has("redirect_status");
  if (challenge && !answered) {
    status.replaceChildren(notice("", "Your bank asks you to confirm this payment.", until, " ",
      el("a", { href: challenge }, "Confirm with your bank")));
  } else {
    status.replaceChildren(el("p", { class: "muted" }, "Finishing your payment… Don't pay again.", until));
  }
}
