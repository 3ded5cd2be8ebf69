// checkout.js: the payment form. The card number is turned into the
// processor's payment-method token in the page (as a real processor's own
// form does), so card data never reaches Usher. One idempotency key per
// attempt, kept in sessionStorage until the attempt has a final answer: a
// double click, a retry after a network error or a reload sends the same key
// and gets the same order back, never a second charge. A payment the bank
// wants confirmed (3-D Secure) sends the browser to the bank's page, which
// sends it back to the order's page (orders.js).

import { api, config, el, money, newKey, notice, ApiError } from "/assets/api.js";

const FINAL = new Set(["confirmed", "payment_failed", "refunded", "cancelled"]);

function tokenFor(number) {
  const digits = number.replace(/\D/g, "");
  const card = (config.payments?.test_cards || []).find((c) => c.number.replace(/\D/g, "") === digits);
  return card ? card.token : null;
}

/// The bank's page for a payment waiting for the fan (3-D Secure), if any:
/// only an http(s) URL from the order itself.
export function challengeUrl(order) {
  const url = order.state === "pending_payment" && order.payment_status === "requires_action" ? order.next_action?.redirect_url : null;
  return url && /^https?:\/\//.test(url) ? url : null;
}

function pending(scope) {
  return JSON.parse(sessionStorage.getItem(`usher.pay.${scope}`) || "null");
}

async function waitForFinal(order) {
  for (let i = 0; i < 90 && !FINAL.has(order.state) && !challengeUrl(order); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    order = (await api(`/v1/orders/${order.order_id}`)).data;
  }
  return order;
}

/// A payment a reload interrupted after its hold was already sold: asks
/// again with the same key, which answers with the order it made. Null if
/// nothing was being paid for under this scope.
export async function resumePayment(scope) {
  const record = pending(scope);
  if (!record) return null;
  let { data: order } = await api("/v1/orders", { method: "POST", key: record.key, body: record.body });
  order = await waitForFinal(order);
  if (FINAL.has(order.state)) sessionStorage.removeItem(`usher.pay.${scope}`);
  return order;
}

/// opts: scope (a stable id for this purchase, e.g. the hold id), total,
/// body(pm) -> the order request, onDone(order), onFailed(order) optional.
export function payForm(opts) {
  const { scope, total, body, onDone } = opts;
  const status = el("div", { "aria-live": "assertive" });
  const cards = config.payments?.test_cards || [];
  const form = el("form", { class: "pay", novalidate: true },
    el("label", { for: `card-${scope}` }, "Card number"),
    el("input", { id: `card-${scope}`, name: "card", inputmode: "numeric", autocomplete: "cc-number", placeholder: "4242 4242 4242 4242", required: true }),
    cards.length ? el("details", { class: "test-cards" },
      el("summary", {}, "Test cards (sandbox payments: no real money)"),
      el("table", {}, el("tbody", {}, cards.map((c) => el("tr", {}, el("td", {}, c.number), el("td", {}, c.outcome)))))) : null,
    el("p", {}, el("button", { type: "submit" }, `Pay ${money(total)}`)),
    status);
  const button = form.querySelector("button[type=submit]");

  async function attempt(record) {
    button.disabled = true;
    button.textContent = "Paying…";
    status.replaceChildren(el("p", { class: "muted" }, "Talking to the card processor…"));
    sessionStorage.setItem(`usher.pay.${scope}`, JSON.stringify(record));
    try {
      let { data: order } = await api("/v1/orders", { method: "POST", key: record.key, body: record.body });
      if (!FINAL.has(order.state) && !challengeUrl(order)) {
        status.replaceChildren(el("p", { class: "muted" }, "Your bank is taking a moment. Don't pay again: we'll finish this payment."));
        order = await waitForFinal(order);
      }
      const challenge = challengeUrl(order);
      if (challenge) {
        // The bank asks the fan to confirm: its page, then back to the
        // order's page, which shows the outcome. The seats stay held.
        sessionStorage.removeItem(`usher.pay.${scope}`);
        status.replaceChildren(el("p", { class: "muted" }, "Your bank asks you to confirm this payment. Taking you to its page…"));
        location.assign(challenge);
        return;
      }
      if (order.state === "confirmed") {
        sessionStorage.removeItem(`usher.pay.${scope}`);
        status.replaceChildren(notice("ok", "Payment accepted. Your tickets are ready."));
        form.querySelector("input").disabled = true;
        button.remove();
        onDone(order);
        return;
      }
      // A final answer that is not a sale: the next attempt is a new one.
      sessionStorage.removeItem(`usher.pay.${scope}`);
      if (order.state === "payment_failed") {
        status.replaceChildren(notice("error",
          `Your card was declined (${order.failure_code || "declined"}). Nothing was charged, and your seats are still held: try another card.`));
        opts.onFailed?.(order);
      } else if (FINAL.has(order.state)) {
        status.replaceChildren(notice("error", `The seats could not be sold (${order.refund_reason || order.state}); any payment has been refunded.`));
      } else {
        status.replaceChildren(notice("", "Your payment is still being processed. Your tickets will appear under My tickets when it completes."));
      }
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 409) {
        sessionStorage.removeItem(`usher.pay.${scope}`);
      }
      status.replaceChildren(notice("error", err instanceof ApiError ? `${err.message}` : String(err)));
    }
    button.disabled = false;
    button.textContent = `Pay ${money(total)}`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (button.disabled) return;
    const pm = tokenFor(form.card.value);
    if (!pm) {
      status.replaceChildren(notice("error", cards.length
        ? "That card number is not one of the sandbox's test cards listed below."
        : "Card payments are not set up on this deployment."));
      form.card.focus();
      return;
    }
    attempt({ key: newKey(`order-${scope}`), body: body(pm) });
  });

  // A reload in the middle of paying: send the same request again, which the
  // server answers with the order it already made.
  const resumed = pending(scope);
  if (resumed) queueMicrotask(() => attempt(resumed));
  return form;
}
