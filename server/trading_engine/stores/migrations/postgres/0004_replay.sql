-- Replay reads a company's prediction batches in the order they were decided:
-- by decision time, then by arrival. Rows stored before this migration are
-- numbered in no particular order; their decision times rarely tie.
ALTER TABLE prediction_batches ADD COLUMN arrival BIGSERIAL;
CREATE INDEX prediction_batches_company_received
    ON prediction_batches (company_id, received_at_ns, arrival);
