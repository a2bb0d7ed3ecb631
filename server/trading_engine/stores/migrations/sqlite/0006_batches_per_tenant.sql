-- Prediction batches are the tenant's, not the company's: one user may reuse another's
-- batch id, and a user may send the same id again with other content. Each decision from a
-- batch keeps a row of its own, named by the tenant, the batch id, the instant it was
-- decided and the SHA-256 of its bytes; only the same bytes decided at the same instant (a
-- write retried) are the same row. A stored signal finds its batch by its tenant, batch id
-- and decision instant (decision 21).
--
-- SQLite cannot change a primary key in place: the table is rebuilt. The arrival order
-- replay breaks ties with (decision 17) becomes a column of its own, `arrival`, carrying
-- the old rowids over: a rowid that is not a column may be renumbered by VACUUM.
-- sha256() is the store's own function (stores/sqlite.py registers it on its connection).
CREATE TABLE prediction_batches_per_tenant (
    arrival        INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id     TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    batch_id       TEXT    NOT NULL,
    received_at_ns INTEGER NOT NULL,
    -- The serialized batch, as received, and its SHA-256.
    payload        BLOB    NOT NULL,
    payload_sha256 BLOB    NOT NULL,
    risk_verdict   TEXT    NOT NULL DEFAULT '',
    UNIQUE (company_id, user_id, batch_id, received_at_ns, payload_sha256)
) STRICT;

INSERT INTO prediction_batches_per_tenant
    (arrival, company_id, user_id, batch_id, received_at_ns, payload, payload_sha256, risk_verdict)
SELECT rowid, company_id, user_id, batch_id, received_at_ns, payload, sha256(payload), risk_verdict
FROM prediction_batches ORDER BY rowid;

DROP TABLE prediction_batches;
ALTER TABLE prediction_batches_per_tenant RENAME TO prediction_batches;

-- Retention deletes by age across every company, with the signals.
CREATE INDEX prediction_batches_received_at ON prediction_batches (received_at_ns);
-- Replay reads a company's batches in decision order: by decision time, then by arrival.
CREATE INDEX prediction_batches_company_received
    ON prediction_batches (company_id, received_at_ns, arrival);
