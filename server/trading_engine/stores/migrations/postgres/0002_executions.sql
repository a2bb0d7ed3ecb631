-- Execution results as received, and what became of each signal.
-- Nanosecond times are Unix-epoch bigints; enums are the protobuf values.
-- Identifiers sort with COLLATE "C" (byte order), as SQLite sorts them.

-- Append-only: every ExecutionResult the engine took in, kept once.
CREATE TABLE executions (
    -- Numbers the results in the order they were recorded.
    id             bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id     text    NOT NULL,
    user_id        text    NOT NULL,
    execution_id   text    NOT NULL,
    signal_id      text    NOT NULL,
    -- ExecutionStatus.
    status         integer NOT NULL,
    recorded_at_ns bigint  NOT NULL,
    -- The serialized ExecutionResult.
    payload        bytea   NOT NULL,
    -- A re-sent result is the same row; the same execution FILLED, later
    -- CLOSED, is two.
    UNIQUE (company_id, execution_id, status)
);

-- A signal's results in recorded order.
CREATE INDEX executions_signal ON executions (company_id, signal_id, id);

-- One row per signal that has results (a SignalPerformance), replaced as they arrive.
CREATE TABLE outcomes (
    company_id           text    NOT NULL,
    user_id              text    NOT NULL,
    signal_id            text    COLLATE "C" NOT NULL,
    symbol               text    NOT NULL,
    signal_type          integer NOT NULL,
    strength             double precision NOT NULL,
    confidence           double precision NOT NULL,
    -- The signal's decision instant.
    generated_at_ns      bigint  NOT NULL,
    -- SignalOutcome.
    outcome              integer NOT NULL,
    profit_loss_pips     double precision NOT NULL,
    profit_loss          double precision NOT NULL,
    -- NULL until the order is filled.
    slippage_pips        double precision,
    execution_latency_ns bigint,
    -- 0 until the position is closed.
    closed_at_ns         bigint  NOT NULL,
    strategy_version     bigint  NOT NULL,
    updated_at_ns        bigint  NOT NULL,
    -- The serialized SignalPerformance.
    payload              bytea   NOT NULL,
    PRIMARY KEY (company_id, signal_id)
);

-- A user's outcomes over a window, in (time, id) order.
CREATE INDEX outcomes_user_time ON outcomes (company_id, user_id, generated_at_ns, signal_id);
-- Start-up reads the open positions (SIGNAL_OUTCOME_OPEN = 4) of every
-- company: only those are indexed, so the scan skips the closed majority.
CREATE INDEX outcomes_open ON outcomes (company_id, user_id, signal_id) WHERE outcome = 4;
