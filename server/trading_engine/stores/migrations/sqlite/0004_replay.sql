-- Replay reads a company's prediction batches in the order they were decided:
-- by decision time, then by arrival (the implicit rowid, assigned in insertion order).
CREATE INDEX prediction_batches_company_received
    ON prediction_batches (company_id, received_at_ns);
