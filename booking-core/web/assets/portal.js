// portal.js: the venue portal, for operators: sign in (an operator belongs to
// one organisation and sees only its venues and events), import a seating
// chart with a preview, create and edit events (with their after-sale and
// chargeback policy), see their disputes and waitlist, set the waiting
// room live, and watch an on-sale on a dashboard fed by Server-Sent Events. Loaded only
// on /portal pages, so fans never download it.

import { el, money, notice, render, when, ApiError } from "/assets/api.js";

// The operator's session, apart from any fan's.
const operator = {
  get token() { return localStorage.getItem("usher.operator.token"); },
  get who() { return JSON.parse(localStorage.getItem("usher.operator") || "null"); },
  signIn(token, who) {
    localStorage.setItem("usher.operator.token", token);
    localStorage.setItem("usher.operator", JSON.stringify(who));
  },
  signOut() {
    localStorage.removeItem("usher.operator.token");
    localStorage.removeItem("usher.operator");
  },
};

async function call(path, { method = "GET", body, raw, contentType } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (operator.token) headers.authorization = `Bearer ${operator.token}`;
  if (body !== undefined) headers["content-type"] = contentType || "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : raw ? body : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { code: "network", detail: "Usher could not be reached." });
  }
  const data = (r.headers.get("content-type") || "").includes("json") ? await r.json().catch(() => null) : null;
  if (r.status === 401 && path !== "/v1/portal/sign-in") {
    operator.signOut();
    location.href = `/portal/sign-in?next=${encodeURIComponent(location.pathname)}`;
    throw new ApiError(401, data || {});
  }
  if (!r.ok) throw new ApiError(r.status, data || { title: r.statusText });
  return data;
}

const canEdit = () => ["owner", "editor"].includes(operator.who?.role);

function nav() {
  const who = operator.who;
  const top = document.querySelector(".top");
  top.querySelector(".brand").textContent = "Usher for venues";
  top.querySelector(".brand").href = "/portal";
  top.querySelector("nav").replaceChildren(
    el("a", { href: "/portal" }, "Events"),
    el("a", { href: "/portal/venues" }, "Venues"),
    el("a", { href: "/portal/money" }, "Money"),
    who ? el("span", {}, `${who.email} (${who.role}, ${who.organisation.name}) `,
      el("button", { class: "link", type: "button", onclick: async () => {
        await call("/v1/portal/sign-out", { method: "POST" }).catch(() => {});
        operator.signOut();
        location.href = "/portal/sign-in";
      } }, "Sign out")) : el("a", { href: "/portal/sign-in" }, "Sign in"));
}

function problemText(err) {
  if (!(err instanceof ApiError)) return String(err);
  return `${err.message} (${err.code})`;
}

function problemList(err) {
  const problems = err?.problem?.problems;
  if (!Array.isArray(problems) || problems.length === 0) return notice("error", problemText(err));
  return notice("error", el("p", {}, `${err.message} (${err.code}):`),
    el("ul", { class: "problems" }, problems.map((p) => el("li", {},
      p.line ? `line ${p.line}: ` : p.path ? `${p.path}: ` : "", p.message || String(p)))));
}

// ---- pages ------------------------------------------------------------------

async function signInPage() {
  const next = new URLSearchParams(location.search).get("next");
  const status = el("div", { "aria-live": "polite" });
  const form = el("form", {},
    el("label", { for: "op-email" }, "E-mail"),
    el("input", { id: "op-email", name: "email", type: "email", autocomplete: "username", required: true }),
    el("label", { for: "op-password" }, "Password"),
    el("input", { id: "op-password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("p", {}, el("button", { type: "submit" }, "Sign in")),
    status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const data = await call("/v1/portal/sign-in", { method: "POST", body: { email: form.email.value.trim(), password: form.password.value } });
      operator.signIn(data.token, { ...data.operator, email: data.operator.email });
      location.href = next && next.startsWith("/portal") ? next : "/portal";
    } catch (err) {
      status.replaceChildren(notice("error", err.code === "invalid_credentials" ? "That e-mail and password do not match." : problemText(err)));
    }
  });
  render("Operator sign-in", el("h1", {}, "Sign in to the venue portal"), form);
  form.email.focus();
}

async function eventsPage() {
  const events = await call("/v1/portal/events");
  const list = events.items || events;
  render("Events",
    el("h1", {}, "Events"),
    canEdit() ? el("p", {}, el("a", { class: "button", href: "/portal/events/new" }, "New event")) : "",
    list.length === 0 ? el("p", {}, "No events yet.") : el("table", {},
      el("thead", {}, el("tr", {}, ["Event", "Starts", "On sale", "Venue", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((e) => el("tr", {},
        el("td", {}, el("a", { href: `/portal/events/${e.id}` }, e.title)),
        el("td", {}, when(e.starts_at, e.venue?.timezone)),
        el("td", {}, when(e.on_sale_at, e.venue?.timezone)),
        el("td", {}, e.venue?.name ?? e.venue_id),
        el("td", {}, el("a", { href: `/portal/events/${e.id}/live` }, "Live dashboard")))))));
}

async function venuesPage() {
  const venues = await call("/v1/portal/venues");
  const list = venues.items || venues;
  render("Venues",
    el("h1", {}, "Venues"),
    canEdit() ? el("p", {}, el("a", { class: "button", href: "/portal/venues/import" }, "Import a seating chart")) : "",
    el("table", {},
      el("thead", {}, el("tr", {}, ["Venue", "City", "Seats"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((v) => el("tr", {}, el("td", {}, v.name), el("td", {}, v.city), el("td", {}, (v.seat_count ?? "").toLocaleString()))))));
}

async function importPage() {
  const status = el("div", { "aria-live": "polite" });
  const preview = el("div");
  const venueFields = ["slug", "name", "city", "country", "timezone", "focal_x", "focal_y"];
  const form = el("form", {},
    el("p", {}, "A chart is a JSON document or a CSV file: sections, rows and seats with x/y, tier and flags (the formats are in Usher's docs/venue-charts.md). Check it first: every problem is listed by line."),
    el("label", { for: "chart-file" }, "Chart file (.json or .csv)"),
    el("input", { id: "chart-file", name: "file", type: "file", accept: ".json,.csv,application/json,text/csv", required: true }),
    el("fieldset", { class: "csv-only" },
      el("legend", {}, "For a CSV chart: the venue"),
      el("div", { class: "row" }, venueFields.map((f) => el("div", {}, el("label", { for: `v-${f}` }, f.replace("_", " ")), el("input", { id: `v-${f}`, name: f }))))),
    el("div", { class: "actions" },
      el("button", { type: "submit", name: "preview", value: "1", class: "secondary" }, "Check and preview"),
      el("button", { type: "submit", name: "import", value: "1" }, "Import")),
    status, preview);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const dry = e.submitter?.name === "preview";
    const file = form.file.files[0];
    if (!file) { status.replaceChildren(notice("error", "Choose a chart file first.")); return; }
    const text = await file.text();
    const csv = file.name.toLowerCase().endsWith(".csv") || file.type === "text/csv";
    const query = new URLSearchParams();
    if (dry) query.set("dry_run", "true");
    if (csv) for (const f of venueFields) if (form[f].value) query.set(f, form[f].value);
    status.replaceChildren(el("p", { class: "muted" }, dry ? "Checking…" : "Importing…"));
    try {
      const result = await call(`/v1/portal/venues/import?${query}`, { method: "POST", body: text, raw: true, contentType: csv ? "text/csv" : "application/json" });
      if (dry) {
        status.replaceChildren(notice("ok", "The chart is valid: nothing is stored until you import it."));
        preview.replaceChildren(drawPreview(result));
      } else {
        const v = result.venue;
        status.replaceChildren(notice("ok", `${result.created ? "Imported" : "Already imported"}: ${v.name} (${v.seat_count.toLocaleString()} seats). `,
          el("a", { href: `/portal/events/new?venue=${v.id}` }, "Create an event there")));
      }
    } catch (err) {
      status.replaceChildren(problemList(err));
      preview.replaceChildren();
    }
  });
  render("Import a chart", el("h1", {}, "Import a seating chart"), form);
}

// A preview of the chart: every seat as a dot, coloured by tier, with the
// same shapes as the fans' map for accessible and obstructed seats.
function drawPreview(p) {
  const seats = p.seats || [];
  const box = el("section", { "aria-label": "Chart preview" },
    el("h2", {}, "Preview"),
    el("p", {}, `${(p.seat_count ?? seats.length).toLocaleString()} seats in ${(p.sections || []).length} sections.`));
  if (p.sections?.length) {
    box.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Section"), el("th", {}, "Seats"))),
      el("tbody", {}, p.sections.map((s) => el("tr", {}, el("td", {}, s.name || s.code), el("td", {}, s.seat_count ?? s.seats))))));
  }
  if (!seats.length) return box;
  const canvas = el("canvas", { width: 640, height: 400, role: "img", "aria-label": `Preview of ${seats.length} seats` });
  const ctx = canvas.getContext("2d");
  const xs = seats.map((s) => s[0]), ys = seats.map((s) => s[1]);
  const [minx, maxx, miny, maxy] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const k = Math.min(620 / (maxx - minx || 1), 380 / (maxy - miny || 1));
  const colours = ["#6d28d9", "#1d4ed8", "#0f766e", "#b45309", "#be185d"];
  for (const [x, y, tier, flags] of seats) {
    ctx.fillStyle = colours[(Math.max(1, tier) - 1) % colours.length];
    const sx = 10 + (x - minx) * k, sy = 10 + (y - miny) * k, r = Math.max(1, Math.min(4, k * 0.3));
    if (flags & 1) ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r);
    else { ctx.beginPath(); ctx.arc(sx, sy, r, 0, Math.PI * 2); ctx.fill(); }
  }
  box.append(canvas);
  return box;
}

const CATEGORIES = ["concert", "sports", "theatre", "comedy", "family", "festival"];

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

async function eventPage(id) {
  const venues = await call("/v1/portal/venues");
  const venueList = venues.items || venues;
  const e = id ? await call(`/v1/portal/events/${id}`) : null;
  const editable = canEdit();
  const status = el("div", { "aria-live": "polite" });
  const field = (name, label, attrs = {}) => [el("label", { for: `e-${name}` }, label), el("input", { id: `e-${name}`, name, disabled: !editable, ...attrs })];
  const tiers = el("tbody");
  const addTier = (t = {}) => tiers.append(el("tr", {},
    el("td", {}, el("input", { name: "tier", type: "number", min: 1, value: t.tier ?? "", "aria-label": "Tier number", disabled: !editable })),
    el("td", {}, el("input", { name: "tier_name", value: t.name ?? "", "aria-label": "Tier name", disabled: !editable })),
    el("td", {}, el("input", { name: "tier_price", type: "number", min: 0, step: "0.01", value: t.price_cents != null ? (t.price_cents / 100).toFixed(2) : "", "aria-label": "Price", disabled: !editable }))));
  (e?.tiers || [{ tier: 1 }]).forEach(addTier);
  const rules = e?.rules || {};
  const policy = e?.policy || {};
  const form = el("form", {},
    el("label", { for: "e-venue" }, "Venue"),
    el("select", { id: "e-venue", name: "venue_id", disabled: !!e || !editable },
      venueList.map((v) => el("option", { value: v.id, selected: e ? e.venue.id === v.id : new URLSearchParams(location.search).get("venue") === String(v.id) }, `${v.name}, ${v.city}`))),
    ...field("title", "Title", { value: e?.title ?? "", required: true }),
    ...field("artist", "Artist", { value: e?.artist ?? "", required: true }),
    el("label", { for: "e-category" }, "Category"),
    el("select", { id: "e-category", name: "category", disabled: !editable }, CATEGORIES.map((c) => el("option", { value: c, selected: e?.category === c }, c))),
    ...field("description", "Description", { value: e?.description ?? "" }),
    el("div", { class: "row" },
      el("div", {}, ...field("starts_at", "Starts (your time)", { type: "datetime-local", value: localInput(e?.starts_at), required: true })),
      el("div", {}, ...field("on_sale_at", "On sale from (your time)", { type: "datetime-local", value: localInput(e?.on_sale_at), required: true }))),
    el("h2", {}, "Price tiers"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Tier"), el("th", {}, "Name"), el("th", {}, "Price"))), tiers),
    editable ? el("p", {}, el("button", { type: "button", class: "secondary", onclick: () => addTier() }, "Add a tier")) : "",
    el("h2", {}, "Rules"),
    el("div", { class: "row" },
      el("div", {}, ...field("hold_ttl_secs", "Hold time (seconds)", { type: "number", min: 30, value: rules.hold_ttl_secs ?? 300 })),
      el("div", {}, ...field("max_seats_per_fan", "Seats per fan", { type: "number", min: 1, value: rules.max_seats_per_fan ?? 8 })),
      el("div", {}, ...field("resale_cap_percent", "Resale cap (% of face value)", { type: "number", min: 0, value: policy.resale_cap_percent ?? 120 })),
      el("div", {}, ...field("resale_fee_percent", "Resale fee (% of the price)", { type: "number", min: 0, max: 100, value: policy.resale_fee_percent ?? 10 }))),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "protected", checked: rules.protected ?? true, disabled: !editable }), "Waiting room at the on-sale"),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "transfers_allowed", checked: policy.transfers_allowed ?? true, disabled: !editable }), "Fans may transfer tickets"),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "return_refunded_seats", checked: policy.return_refunded_seats ?? true, disabled: !editable }), "Refunded seats go back on sale"),
    el("label", { for: "e-dispute" }, "A chargeback voids the order's tickets"),
    el("select", { id: "e-dispute", name: "dispute_void_on", disabled: !editable },
      el("option", { value: "lost", selected: (policy.dispute_void_on ?? "lost") === "lost" }, "only if the bank decides it against the payment"),
      el("option", { value: "created", selected: policy.dispute_void_on === "created" }, "as soon as the dispute opens (valid again if it is won)")),
    editable ? el("p", {}, el("button", { type: "submit" }, e ? "Save changes" : "Create event")) : el("p", { class: "muted" }, "Your role can read this event, not change it."),
    status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const tierRows = [...tiers.querySelectorAll("tr")].map((tr) => ({
      tier: Number(tr.querySelector("[name=tier]").value),
      name: tr.querySelector("[name=tier_name]").value.trim(),
      price_cents: Math.round(Number(tr.querySelector("[name=tier_price]").value) * 100),
    })).filter((t) => t.tier && t.name);
    const body = {
      title: form.title.value.trim(), artist: form.artist.value.trim(), category: form.category.value,
      description: form.description.value.trim(),
      starts_at: new Date(form.starts_at.value).toISOString(), on_sale_at: new Date(form.on_sale_at.value).toISOString(),
      tiers: tierRows,
      rules: {
        hold_ttl_secs: Number(form.hold_ttl_secs.value),
        hold_jitter_secs: rules.hold_jitter_secs ?? Math.round(Number(form.hold_ttl_secs.value) / 10),
        max_seats_per_fan: Number(form.max_seats_per_fan.value),
        protected: form.protected.checked,
      },
      policy: {
        return_refunded_seats: form.return_refunded_seats.checked,
        resale_fee_percent: Number(form.resale_fee_percent.value),
        transfers_allowed: form.transfers_allowed.checked,
        resale_cap_percent: Number(form.resale_cap_percent.value),
        dispute_void_on: form.dispute_void_on.value,
      },
    };
    if (!e) body.venue_id = Number(form.venue_id.value);
    try {
      const saved = await call(e ? `/v1/portal/events/${e.id}` : "/v1/portal/events", { method: e ? "PATCH" : "POST", body });
      if (!e) { location.href = `/portal/events/${saved.id}`; return; }
      status.replaceChildren(notice("ok", "Saved."));
    } catch (err) {
      status.replaceChildren(problemList(err));
    }
  });
  const parts = [el("h1", {}, e ? e.title : "New event"), form];
  if (e) parts.push(await waitingRoomForm(e.id), await feesForm(e.id), await disputesList(e.id), await waitlistBox(e.id), el("p", {}, el("a", { class: "button", href: `/portal/events/${e.id}/live` }, "Live on-sale dashboard")));
  render(e ? e.title : "New event", ...parts);
}

// The event's currency, fees and taxes: orders made from now on carry them
// as lines (the currency is fixed once the event has sales).
async function feesForm(id) {
  const box = el("section", { "aria-labelledby": "fees-title" }, el("h2", { id: "fees-title" }, "Fees and taxes"));
  let f;
  try {
    f = await call(`/v1/portal/events/${id}/fees`);
  } catch (err) {
    box.append(notice("error", problemText(err)));
    return box;
  }
  const editable = canEdit();
  const status = el("div", { "aria-live": "polite" });
  const num = (name, label, value) => el("div", {}, el("label", { for: `f-${name}` }, label), el("input", { id: `f-${name}`, name, type: "number", step: 1, value, disabled: !editable }));
  const check = (name, label, value) => el("div", {}, el("input", { id: `f-${name}`, name, type: "checkbox", checked: value, disabled: !editable }), el("label", { for: `f-${name}` }, label));
  const form = el("form", { class: "fees" },
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "f-currency" }, "Currency (ISO 4217)"), el("input", { id: "f-currency", name: "currency", value: f.currency, maxlength: 3, disabled: !editable })),
      num("service_fee_per_ticket_cents", "Service fee per ticket (minor units)", f.service_fee_per_ticket_cents),
      num("facility_fee_per_ticket_cents", "Facility fee per ticket", f.facility_fee_per_ticket_cents),
      num("order_fee_cents", "Fee per order", f.order_fee_cents),
      num("tax_rate_bp", "Tax rate (basis points: 2000 = 20%)", f.tax_rate_bp)),
    el("div", { class: "row" },
      check("tax_inclusive", "Prices include the tax", f.tax_inclusive),
      check("fees_taxable", "Fees are taxed", f.fees_taxable),
      check("fees_refundable", "Refunds give the fees back", f.fees_refundable)),
    editable ? el("p", {}, el("button", { type: "submit" }, "Save fees and taxes")) : "",
    status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {
      currency: form.currency.value,
      service_fee_per_ticket_cents: Number(form.service_fee_per_ticket_cents.value),
      facility_fee_per_ticket_cents: Number(form.facility_fee_per_ticket_cents.value),
      order_fee_cents: Number(form.order_fee_cents.value),
      tax_rate_bp: Number(form.tax_rate_bp.value),
      tax_inclusive: form.tax_inclusive.checked,
      fees_taxable: form.fees_taxable.checked,
      fees_refundable: form.fees_refundable.checked,
    };
    try {
      const saved = await call(`/v1/portal/events/${id}/fees`, { method: "PUT", body });
      status.replaceChildren(notice("ok", `Saved: ${saved.currency.toUpperCase()}, tax ${saved.tax_rate_bp / 100}%. Orders made from now on carry these lines.`));
    } catch (err) {
      status.replaceChildren(problemList(err));
    }
  });
  box.append(form);
  return box;
}

// Money to follow up: where the payment provider's books and ours differ
// (the daily comparison; an open one is resolved here with a note), and
// resale payouts the provider refused.
async function moneyPage() {
  const mismatches = el("section", { "aria-labelledby": "books-title" }, el("h2", { id: "books-title" }, "The provider's books against ours"));
  const payouts = el("section", { "aria-labelledby": "payouts-title" }, el("h2", { id: "payouts-title" }, "Resale payouts refused"));
  try {
    const items = await call("/v1/portal/books/mismatches");
    if (!items.length) mismatches.append(el("p", { class: "muted" }, "The books agree: nothing to follow up."));
    else mismatches.append(el("table", {},
      el("thead", {}, el("tr", {}, ["Kind", "Order", "Ours", "Theirs", "What", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, items.map((m) => {
        const cell = el("td", {});
        if (m.state === "open" && canEdit()) {
          const note = el("input", { "aria-label": "What was done", name: "resolution", placeholder: "What was done" });
          const done = el("button", { type: "button", onclick: async () => {
            try {
              await call(`/v1/portal/books/mismatches/${m.id}/resolve`, { method: "POST", body: { resolution: note.value } });
              cell.replaceChildren("resolved");
            } catch (err) {
              cell.append(notice("error", problemText(err)));
            }
          } }, "Resolve");
          cell.append(note, done);
        } else {
          cell.append(m.resolution ?? "");
        }
        return el("tr", { "data-mismatch": m.id },
          el("td", {}, m.kind), el("td", {}, m.order_id ?? ""), el("td", {}, m.ours_cents ?? ""),
          el("td", {}, m.theirs_cents ?? ""), el("td", {}, m.detail), el("td", {}, m.state), cell);
      }))));
  } catch (err) {
    mismatches.append(notice("error", problemText(err)));
  }
  try {
    const items = await call("/v1/portal/payouts?state=failed");
    if (!items.length) payouts.append(el("p", { class: "muted" }, "No payout has been refused."));
    else payouts.append(el("table", {},
      el("thead", {}, el("tr", {}, ["Order", "Seller gets", "Account", "Why", "Sold"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, items.map((p) => el("tr", { "data-payout": p.listing_id },
        el("td", {}, p.order_id), el("td", {}, money(p.net_cents)), el("td", {}, p.destination ?? ""),
        el("td", {}, p.failure_code ?? ""), el("td", {}, when(p.created_at)))))));
  } catch (err) {
    payouts.append(notice("error", problemText(err)));
  }
  render("Money", el("h1", {}, "Money"), mismatches, payouts);
}

// The event's disputes (chargebacks): what the bank decided and what it did
// to the order's tickets and seats.
async function disputesList(id) {
  const box = el("section", { "aria-labelledby": "disputes-title" }, el("h2", { id: "disputes-title" }, "Disputes"));
  let items;
  try {
    items = (await call(`/v1/portal/events/${id}/disputes`)).items;
  } catch (err) {
    box.append(notice("error", problemText(err)));
    return box;
  }
  if (!items.length) {
    box.append(el("p", { class: "muted" }, "No payment of this event has been disputed."));
    return box;
  }
  const effect = (d) => {
    if (d.restored_at) return "tickets voided, then restored";
    if (d.voided_ticket_ids.length) return `${d.voided_ticket_ids.length} ticket(s) voided${d.seats_returned_at ? ", seats back on sale" : ""}`;
    return "tickets untouched";
  };
  box.append(el("table", {},
    el("thead", {}, el("tr", {}, ["Dispute", "Order", "Amount", "Reason", "State", "Tickets", "Opened"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, items.map((d) => el("tr", { "data-dispute": d.dispute_id },
      el("td", {}, d.dispute_id),
      el("td", {}, d.order_id ?? "unknown charge"),
      el("td", {}, money(d.amount_cents)),
      el("td", {}, d.reason ?? ""),
      el("td", {}, d.state),
      el("td", {}, effect(d)),
      el("td", {}, when(d.opened_at)))))));
  return box;
}

// The event's waiting room, set live through the edge's admin API (the core
// checks the operator's organisation and forwards the change).
async function waitingRoomForm(id) {
  const box = el("section", { "aria-labelledby": "room-title" }, el("h2", { id: "room-title" }, "Waiting room"));
  let room = null;
  try {
    room = await call(`/v1/portal/events/${id}/waiting-room`);
  } catch (err) {
    if (err.code !== "queue_not_found") {
      box.append(notice("error", problemText(err)));
      return box;
    }
    box.append(el("p", { class: "muted" }, "This event has no waiting room at the edge yet: applying these settings opens one."));
  }
  const s = room?.settings || { event_id: id, admit_per_minute: 600, max_active: 500, session_secs: 900, mode: "fifo", message: "", grace_secs: 60 };
  const editable = canEdit();
  const status = el("div", { "aria-live": "polite" });
  const num = (name, label, value) => el("div", {}, el("label", { for: `r-${name}` }, label), el("input", { id: `r-${name}`, name, type: "number", min: 0, value, disabled: !editable }));
  const form = el("form", { class: "room" },
    el("div", { class: "row" },
      num("admit_per_minute", "Admitted per minute", s.admit_per_minute),
      num("max_active", "Most shopping at once", s.max_active),
      el("div", {}, el("label", { for: "r-mode" }, "Mode"),
        el("select", { id: "r-mode", name: "mode", disabled: !editable },
          ["fifo", "lottery", "paused", "closed", "passthrough"].map((m) => el("option", { value: m, selected: s.mode === m }, m))))),
    el("label", { for: "r-message" }, "Message on the waiting page"),
    el("input", { id: "r-message", name: "message", value: s.message ?? "", disabled: !editable }),
    editable ? el("p", {}, el("button", { type: "submit" }, room ? "Apply now" : "Open the waiting room")) : "",
    status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { ...s, admit_per_minute: Number(form.admit_per_minute.value), max_active: Number(form.max_active.value), mode: form.mode.value, message: form.message.value };
    try {
      await call(`/v1/portal/events/${id}/waiting-room`, { method: "PUT", body });
      status.replaceChildren(notice("ok", `Applied: ${body.admit_per_minute} a minute, ${body.mode}. Every edge follows within a second.`));
    } catch (err) {
      status.replaceChildren(problemList(err));
    }
  });
  box.append(form);
  return box;
}

// The event's waitlist: how many wait and for how many seats, the offers
// held now, and the latest offers (fans are not named to operators).
async function waitlistBox(id) {
  const box = el("section", { "aria-labelledby": "waitlist-title" }, el("h2", { id: "waitlist-title" }, "Waitlist"));
  let w;
  try {
    w = await call(`/v1/portal/events/${id}/waitlist`);
  } catch (err) {
    box.append(notice("error", problemText(err)));
    return box;
  }
  box.append(el("p", {},
    `${w.waiting} waiting (${w.waiting_seats} seats) · ${w.offered} offers held now (${w.offered_seats} seats) · `,
    `${w.bought} bought · ${w.lapsed} lapsed · ${w.left} left`));
  if (w.offers.length) {
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, ["Entry", "Seats", "Tier", "State", "Offered", "Until"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, w.offers.map((o) => el("tr", {},
        el("td", {}, `#${o.entry_id}`), el("td", {}, String(o.quantity)), el("td", {}, o.tier ? String(o.tier) : "any"),
        el("td", {}, o.state), el("td", {}, new Date(o.offered_at).toLocaleTimeString()),
        el("td", {}, new Date(o.expires_at).toLocaleTimeString()))))));
  }
  return box;
}

// ---- the live dashboard -----------------------------------------------------

const SERIES = [
  ["queue", "Fans in the queue", (s) => s.edge?.queue_length ?? null],
  ["admitted", "Admitted per minute", (s) => s.edge?.admitted_per_minute ?? null],
  ["holds", "Live holds", (s) => s.live_holds],
  ["sales", "Sales in the last minute", (s) => s.sales_last_minute],
  ["left", "Seats left", (s) => s.seats_available],
  ["revenue", "Revenue", (s) => s.revenue_cents],
];

function chart(title, points, format) {
  const w = 320, h = 120, pad = 6;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const last = points.length ? points[points.length - 1][1] : null;
  svg.setAttribute("aria-label", `${title}: ${last == null ? "no data" : format(last)} now`);
  const vals = points.map((p) => p[1]).filter((v) => v != null);
  if (vals.length > 1) {
    const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
    const max = Math.max(...vals, 1);
    const d = points.filter((p) => p[1] != null).map(([t, v], i) =>
      `${i ? "L" : "M"}${(pad + ((t - t0) / (t1 - t0 || 1)) * (w - 2 * pad)).toFixed(1)},${(h - pad - (v / max) * (h - 2 * pad)).toFixed(1)}`).join("");
    const path = document.createElementNS(svgNs, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "#1d4ed8");
    path.setAttribute("stroke-width", "2");
    svg.append(path);
  }
  return el("figure", { class: "card" }, el("figcaption", {}, el("strong", {}, title), ": ", el("span", { class: "figure-now" }, last == null ? "–" : format(last))), svg);
}

async function livePage(id) {
  const e = await call(`/v1/portal/events/${id}`);
  const grid = el("div", { class: "cards" });
  const status = el("p", { class: "muted", "aria-live": "polite" }, "Connecting…");
  const history = [];
  try {
    const h = await call(`/v1/portal/events/${id}/dashboard/history?minutes=60`);
    for (const p of h.points || h.minutes || []) history.push([new Date(p.minute || p.at).getTime(), { sales_last_minute: p.sales ?? p.sales_count, revenue_cents: p.revenue_cents }]);
  } catch { /* the live feed fills in */ }
  const draw = () => grid.replaceChildren(...SERIES.map(([key, title, pick]) =>
    chart(title, history.map(([t, s]) => [t, pick(s)]), key === "revenue" ? money : (v) => Number(v).toLocaleString())));
  render(`Live: ${e.title}`, el("h1", {}, `Live: ${e.title}`), status, grid,
    el("p", {}, el("a", { href: `/portal/events/${id}` }, "Event settings and waiting room")));
  draw();
  // EventSource cannot send an Authorization header: the feed is read with
  // fetch and parsed here.
  const r = await fetch(`/v1/portal/events/${id}/dashboard`, { headers: { authorization: `Bearer ${operator.token}`, accept: "text/event-stream" } });
  if (!r.ok || !r.body) { status.textContent = `The live feed is unavailable (${r.status}).`; return; }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) { status.textContent = "The live feed ended; reload to reconnect."; return; }
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      const s = JSON.parse(data);
      history.push([new Date(s.server_time).getTime(), s]);
      if (history.length > 1800) history.shift();
      status.textContent = `Updated ${new Date(s.server_time).toLocaleTimeString()}: ${s.seats_sold} sold, ${s.seats_available} left, ${money(s.revenue_cents)}.`;
      draw();
    }
  }
}

export async function portal(path) {
  nav();
  let m;
  if (path === "/portal/sign-in") return signInPage();
  if (!operator.token) { location.href = `/portal/sign-in?next=${encodeURIComponent(path)}`; return; }
  if (path === "/portal" || path === "/portal/") return eventsPage();
  if (path === "/portal/venues") return venuesPage();
  if (path === "/portal/money") return moneyPage();
  if (path === "/portal/venues/import") return importPage();
  if (path === "/portal/events/new") return eventPage(null);
  if ((m = path.match(/^\/portal\/events\/(\d+)$/))) return eventPage(Number(m[1]));
  if ((m = path.match(/^\/portal\/events\/(\d+)\/live$/))) return livePage(Number(m[1]));
  render("Not found", el("h1", {}, "Page not found"), el("p", {}, el("a", { href: "/portal" }, "Portal home")));
}
