-- Refund policy per event (issue 23): whether fans may refund themselves,
-- and until how many hours before the event starts (never once it has
-- started); operators refund at any time, with a reason the refund keeps.
ALTER TABLE event_policies
    ADD COLUMN self_refunds        boolean NOT NULL DEFAULT true,
    ADD COLUMN refund_cutoff_hours integer NOT NULL DEFAULT 0
        CHECK (refund_cutoff_hours BETWEEN 0 AND 8760);

ALTER TABLE refunds
    ADD COLUMN reason      text CHECK (reason IS NULL OR length(reason) BETWEEN 1 AND 500),
    ADD COLUMN operator_id bigint REFERENCES operators (id),
    -- An operator's refund says why.
    ADD CONSTRAINT refunds_operator_gives_a_reason CHECK (operator_id IS NULL OR reason IS NOT NULL);
