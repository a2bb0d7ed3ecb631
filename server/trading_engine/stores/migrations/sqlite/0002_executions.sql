-- Execution results as received, and what became of each signal.
-- Nanosecond times are Unix-epoch integers; enums are the protobuf values.

-- Append-only: every ExecutionResult the engine took in, kept once.
CREATE TABLE executions (
    -- Numbers the results in the order they were recorded.
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id     TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    execution_id   TEXT    NOT NULL,
    signal_id      TEXT    NOT NULL,
    -- ExecutionStatus.
    status         INTEGER NOT NULL,
    recorded_at_ns INTEGER NOT NULL,
    -- The serialized ExecutionResult.
    payload        BLOB    NOT NULL,
    -- A re-sent result is the same row; the same execution FILLED, later
    -- CLOSED, is two.
    UNIQUE (company_id, execution_id, status)
) STRICT;

-- A signal's results in recorded order: the rowid (id) ends every index.
CREATE INDEX executions_signal ON executions (company_id, signal_id);

-- One row per signal that has results (a SignalPerformance), replaced as they arrive.
CREATE TABLE outcomes (
    company_id           TEXT    NOT NULL,
    user_id              TEXT    NOT NULL,
    signal_id            TEXT    NOT NULL,
    symbol               TEXT    NOT NULL,
    signal_type          INTEGER NOT NULL,
    strength             REAL    NOT NULL,
    confidence           REAL    NOT NULL,
    -- The signal's decision instant.
    generated_at_ns      INTEGER NOT NULL,
    -- SignalOutcome.
    outcome              INTEGER NOT NULL,
    profit_loss_pips     REAL    NOT NULL,
    profit_loss          REAL    NOT NULL,
    -- NULL until the order is filled.
    slippage_pips        REAL,
    execution_latency_ns INTEGER,
    -- 0 until the position is closed.
    closed_at_ns         INTEGER NOT NULL,
    strategy_version     INTEGER NOT NULL,
    updated_at_ns        INTEGER NOT NULL,
    -- The serialized SignalPerformance.
    payload              BLOB    NOT NULL,
    PRIMARY KEY (company_id, signal_id)
) STRICT;

-- A user's outcomes over a window, in (time, id) order.
CREATE INDEX outcomes_user_time ON outcomes (company_id, user_id, generated_at_ns, signal_id);
-- Start-up reads the open positions (SIGNAL_OUTCOME_OPEN = 4) of every
-- company: only those are indexed, so the scan skips the closed majority.
CREATE INDEX outcomes_open ON outcomes (company_id, user_id, signal_id) WHERE outcome = 4;
