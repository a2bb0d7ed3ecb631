-- Prediction batches are the tenant's, not the company's: one user may reuse another's
-- batch id, and a user may send the same id again with other content. Each decision from a
-- batch keeps a row of its own, named by the tenant, the batch id, the instant it was
-- decided and the SHA-256 of its bytes; only the same bytes decided at the same instant (a
-- write retried) are the same row. A stored signal finds its batch by its tenant, batch id
-- and decision instant (decision 21).
ALTER TABLE prediction_batches ADD COLUMN payload_sha256 bytea;
UPDATE prediction_batches SET payload_sha256 = sha256(payload);
ALTER TABLE prediction_batches ALTER COLUMN payload_sha256 SET NOT NULL;
ALTER TABLE prediction_batches DROP CONSTRAINT prediction_batches_pkey;
ALTER TABLE prediction_batches ADD CONSTRAINT prediction_batches_pkey
    PRIMARY KEY (company_id, user_id, batch_id, received_at_ns, payload_sha256);
