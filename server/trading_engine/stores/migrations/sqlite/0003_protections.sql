-- Trading states, and the prediction batches signals were decided from.
-- Nanosecond times are Unix-epoch integers; enums are the protobuf values.

-- The trading state in force for each user, and for each company (user_id
-- ''), replaced on each change; the engine loads them all at start.
CREATE TABLE trading_states (
    company_id    TEXT    NOT NULL,
    -- '' for the company.
    user_id       TEXT    NOT NULL,
    -- TradingState and TradingStateCause.
    state         INTEGER NOT NULL,
    cause         INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    changed_by    TEXT    NOT NULL,
    changed_at_ns INTEGER NOT NULL,
    PRIMARY KEY (company_id, user_id)
) STRICT;

-- Each batch as received, so a signal can be explained with its prediction.
-- A batch delivered again is the same row: the first one is kept.
CREATE TABLE prediction_batches (
    company_id     TEXT    NOT NULL,
    batch_id       TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    received_at_ns INTEGER NOT NULL,
    -- The serialized batch, as received.
    payload        BLOB    NOT NULL,
    PRIMARY KEY (company_id, batch_id)
) STRICT;

-- Retention deletes by age across every company, with the signals.
CREATE INDEX prediction_batches_received_at ON prediction_batches (received_at_ns);

-- Stop-loss closes of the last day restore the cooldowns at start.
CREATE INDEX executions_recorded_at ON executions (recorded_at_ns);
