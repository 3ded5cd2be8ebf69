-- An operator's own price edit (the event form's tiers) is a price change
-- too, and a fan's complaint may be about one: it goes into price_changes
-- with rule_version 'operator' and no interval (it was no run's).
ALTER TABLE price_changes ALTER COLUMN interval_start DROP NOT NULL;
