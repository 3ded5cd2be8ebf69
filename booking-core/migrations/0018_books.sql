-- The provider's books against ours (issue 23, checkout/books.rs). Once a
-- day (and on an operator's request) the core reads the provider's list of
-- charges and refunds for a window and compares them with orders, refunds
-- and stray charges. Every difference is a row here, once per subject and
-- kind however often later runs see it again:
--
--   charge_without_order       a charge the provider took that no order
--                              keeps: if it names an order of ours it is
--                              taken as a late success is (tickets, or
--                              refunded in full) and the row is `fixed`;
--                              if it names none it is left `open` for an
--                              operator (we cannot tell whose it is)
--   order_paid_without_charge  an order we count as paid whose charge the
--                              provider does not have as taken: `open`
--   amount_mismatch            a charge or refund of another amount than
--                              ours: `open`
--   refund_missing             a refund we count as done that the provider
--                              does not have: `open` (sending it again could
--                              pay the fan twice if the list is late)
--   refund_unrecorded          a refund the provider made that we never
--                              asked for (e.g. from its dashboard): `open`
--
-- `open` rows are sent to the operators' webhook through the outbox and
-- listed in the portal until an operator resolves them with a note.
CREATE TABLE books_runs (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL,
    -- The window compared: charges and refunds created in [since, until).
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL CHECK (until > since),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    charges      integer,
    refunds      integer,
    mismatches   integer,
    -- Why the last try failed (the provider did not answer, ...).
    error        text,
    -- One run per window start and provider: two cores that both find a
    -- run due race on this key and one of them does it.
    UNIQUE (provider, since)
);

CREATE TABLE books_mismatches (
    id            bigserial PRIMARY KEY,
    provider      text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('charge_without_order', 'order_paid_without_charge',
                                                'amount_mismatch', 'refund_missing', 'refund_unrecorded')),
    -- What it is about: the provider's intent or refund id, or our order id.
    subject       text NOT NULL,
    order_id      uuid REFERENCES orders (id),
    intent_id     text,
    refund_id     text,
    ours_cents    bigint,
    theirs_cents  bigint,
    detail        text NOT NULL,
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'fixed', 'resolved')),
    run_id        bigint NOT NULL REFERENCES books_runs (id),
    found_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolved_by   bigint REFERENCES operators (id),
    resolution    text CHECK (resolution IS NULL OR length(resolution) BETWEEN 1 AND 500),
    UNIQUE (provider, kind, subject),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL AND resolution IS NOT NULL))
);

CREATE INDEX books_mismatches_open ON books_mismatches (found_at) WHERE state = 'open';
CREATE INDEX books_mismatches_by_order ON books_mismatches (order_id);

-- Operators hear of each mismatch through the outbox (their webhook only:
-- there is no fan to mail).
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('order.confirmed', 'payment.failed', 'hold.expired', 'refund.issued',
                     'ticket.transferred', 'books.mismatch'));
