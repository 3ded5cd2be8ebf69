-- Waiting-room sessions this core has ended: a confirmed order tells the edge
-- the fan is done (usher-session-done), and the edge stops the session's
-- access token. The core keeps the same fact, so a token that reaches it
-- anyway (an edge that has not heard yet, or a path around the edges) is
-- not admission any more. Keyed as the token names the session: the event
-- and the queue ticket. Rows older than any access token's life can go.
CREATE TABLE ended_admissions (
    event_id  bigint      NOT NULL,
    ticket    bigint      NOT NULL,
    ended_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, ticket)
);
