-- The venue portal: organisations, their operators and operators' sessions,
-- and which organisation owns each venue and event.
--
-- An operator sees and changes only the venues and events of the
-- organisation it belongs to. An event belongs to its venue's organisation
-- (copied onto the event when it is made, so that listing an organisation's
-- events needs no join). Rows made before this migration have no owner
-- until the seeder or an operator's import assigns one.
--
-- No foreign keys are added to the hot tables (holds, seat_claims): see
-- migrations/0002_inventory.sql.

CREATE TABLE organisations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operators (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id bigint NOT NULL REFERENCES organisations (id),
    -- Stored lower-cased; unique whatever the case it is typed in.
    email           text NOT NULL CHECK (email = lower(email) AND email LIKE '_%@_%' AND length(email) <= 254),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    -- owner and editor may change venues and events; viewer only reads.
    role            text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    -- Argon2id, PHC string format.
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX operators_by_email ON operators (lower(email));

-- A session is the SHA-256 of its random bearer token: a copy of this table
-- signs nobody in.
CREATE TABLE operator_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    operator_id bigint NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL CHECK (expires_at > created_at)
);

CREATE INDEX operator_sessions_by_expiry ON operator_sessions (expires_at);

ALTER TABLE venues ADD COLUMN organisation_id bigint REFERENCES organisations (id);
ALTER TABLE events ADD COLUMN organisation_id bigint REFERENCES organisations (id);

CREATE INDEX venues_by_organisation ON venues (organisation_id, id);
CREATE INDEX events_by_organisation ON events (organisation_id, starts_at, id);

-- The dashboard's sales figures: confirmed orders of one event, by time.
-- Partial, so it is written once per order (when it is confirmed).
CREATE INDEX orders_confirmed_by_event ON orders (event_id, confirmed_at) WHERE state = 'confirmed';
