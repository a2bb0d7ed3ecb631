-- Trading states, and the prediction batches signals were decided from.
-- Nanosecond times are Unix-epoch bigints; enums are the protobuf values.
-- Identifiers sort with COLLATE "C" (byte order), as SQLite sorts them.

-- The trading state in force for each user, and for each company (user_id
-- ''), replaced on each change; the engine loads them all at start.
CREATE TABLE trading_states (
    company_id    text    COLLATE "C" NOT NULL,
    -- '' for the company.
    user_id       text    COLLATE "C" NOT NULL,
    -- TradingState and TradingStateCause.
    state         integer NOT NULL,
    cause         integer NOT NULL,
    reason        text    NOT NULL,
    changed_by    text    NOT NULL,
    changed_at_ns bigint  NOT NULL,
    PRIMARY KEY (company_id, user_id)
);

-- Each batch as received, so a signal can be explained with its prediction.
-- A batch delivered again is the same row: the first one is kept.
CREATE TABLE prediction_batches (
    company_id     text   NOT NULL,
    batch_id       text   NOT NULL,
    user_id        text   NOT NULL,
    received_at_ns bigint NOT NULL,
    -- The serialized batch, as received.
    payload        bytea  NOT NULL,
    PRIMARY KEY (company_id, batch_id)
);

-- Retention deletes by age across every company, with the signals.
CREATE INDEX prediction_batches_received_at ON prediction_batches (received_at_ns);

-- Stop-loss closes of the last day restore the cooldowns at start.
CREATE INDEX executions_recorded_at ON executions (recorded_at_ns);
