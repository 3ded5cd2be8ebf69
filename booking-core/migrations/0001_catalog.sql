-- Catalog: venues with their seat geometry, events and their price tiers.
--
-- A venue's geometry (sections, rows, seats) is written once and never
-- changed: a new seating chart is a new venue. That is what lets the seat map
-- be cached for a long time and lets the service keep it in memory.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE venues (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city          text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    country       text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    timezone      text NOT NULL,
    -- The stage or centre of play: best-available ranks seats by distance to it.
    focal_x       real NOT NULL,
    focal_y       real NOT NULL,
    -- Content hash of the geometry: the seat map's ETag.
    geometry_hash text NOT NULL,
    seat_count    integer NOT NULL CHECK (seat_count > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sections (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id bigint NOT NULL REFERENCES venues (id),
    code     text NOT NULL CHECK (length(code) BETWEEN 1 AND 32),
    name     text NOT NULL,
    UNIQUE (venue_id, code)
);

CREATE TABLE seats (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id   bigint NOT NULL REFERENCES venues (id),
    section_id bigint NOT NULL REFERENCES sections (id),
    -- Position in the venue's seat map; the availability bitmap is in this order.
    idx        integer NOT NULL CHECK (idx >= 0),
    row_label  text NOT NULL,
    -- Order of the row within its section.
    row_no     integer NOT NULL,
    -- Seats with consecutive seat_no in one section row sit side by side.
    seat_no    integer NOT NULL,
    label      text NOT NULL,
    x          real NOT NULL,
    y          real NOT NULL,
    tier       smallint NOT NULL CHECK (tier BETWEEN 1 AND 9),
    accessible boolean NOT NULL DEFAULT false,
    obstructed boolean NOT NULL DEFAULT false,
    UNIQUE (venue_id, idx),
    UNIQUE (section_id, row_no, seat_no)
);

CREATE TABLE events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug              text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,95}$'),
    venue_id          bigint NOT NULL REFERENCES venues (id),
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    artist            text NOT NULL CHECK (length(artist) BETWEEN 1 AND 200),
    category          text NOT NULL CHECK (category IN ('concert', 'sports', 'theatre', 'comedy', 'family', 'festival')),
    description       text NOT NULL DEFAULT '',
    starts_at         timestamptz NOT NULL,
    on_sale_at        timestamptz NOT NULL,
    cancelled         boolean NOT NULL DEFAULT false,
    hold_ttl_secs     integer NOT NULL DEFAULT 300 CHECK (hold_ttl_secs BETWEEN 1 AND 3600),
    -- Holds made in the same second spread their expiry over +/- this many seconds.
    hold_jitter_secs  integer NOT NULL DEFAULT 30 CHECK (hold_jitter_secs BETWEEN 0 AND 600 AND (hold_jitter_secs = 0 OR hold_jitter_secs * 2 < hold_ttl_secs)),
    max_seats_per_fan integer NOT NULL DEFAULT 8 CHECK (max_seats_per_fan BETWEEN 1 AND 100),
    -- Holds need the edge's admission token (see the edge-proxy issue).
    protected         boolean NOT NULL DEFAULT false,
    search            tsvector NOT NULL DEFAULT ''::tsvector,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (on_sale_at <= starts_at)
);

CREATE INDEX events_by_start ON events (starts_at, id);
CREATE INDEX events_search ON events USING gin (search);

CREATE TABLE event_tiers (
    event_id    bigint NOT NULL REFERENCES events (id),
    tier        smallint NOT NULL CHECK (tier BETWEEN 1 AND 9),
    name        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
    PRIMARY KEY (event_id, tier)
);

-- The search document covers the event's words and its venue's name and city,
-- so it is kept here rather than in every writer of events.
CREATE FUNCTION events_search_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search :=
        setweight(to_tsvector('simple', coalesce(NEW.artist, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(NEW.title, '')), 'A') ||
        setweight(to_tsvector('simple', (SELECT name || ' ' || city FROM venues WHERE id = NEW.venue_id)), 'B') ||
        setweight(to_tsvector('simple', NEW.category), 'C');
    RETURN NEW;
END
$$;

CREATE TRIGGER events_search_document BEFORE INSERT OR UPDATE OF title, artist, category, venue_id ON events
    FOR EACH ROW EXECUTE FUNCTION events_search_document();
