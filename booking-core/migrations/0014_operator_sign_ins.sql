-- Every operator sign-in attempt, kept as the audit log and read back to slow
-- down guessing (portal/throttle.rs): by account and address together, by
-- address across accounts, and by account across addresses. The last is
-- capped low, so an attacker guessing from many addresses delays the owner
-- by at most a minute and never locks them out.
CREATE TABLE operator_sign_ins (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    email    text        NOT NULL,   -- as normalised; may name no operator
    address  text        NOT NULL,   -- the client, as the edge forwarded it
    outcome  text        NOT NULL CHECK (outcome IN ('signed_in', 'refused', 'throttled'))
);
CREATE INDEX operator_sign_ins_by_email ON operator_sign_ins (email, at);
CREATE INDEX operator_sign_ins_by_address ON operator_sign_ins (address, at);
