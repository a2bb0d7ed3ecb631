-- Strategy layers, signal history, manual signals and the audit log.
-- Nanosecond times are Unix-epoch bigints; enums are the protobuf values.
-- Identifiers sort with COLLATE "C" (byte order), as SQLite sorts them.

-- Each change to a layer appends a revision; nothing is updated in place.
CREATE TABLE strategy_revisions (
    -- One sequence across every layer of every company.
    version        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id     text   NOT NULL,
    -- '' for the company layer.
    user_id        text   NOT NULL,
    layer          integer NOT NULL,
    changed_by     text   NOT NULL,
    changed_at_ns  bigint NOT NULL,
    -- JSON arrays of field paths, and serialized StrategyConfig messages.
    changed_fields text   NOT NULL,
    changes        bytea  NOT NULL,
    layer_fields   text   NOT NULL,
    layer_config   bytea  NOT NULL,
    reason         text   NOT NULL,
    request_id     text   NOT NULL
);

-- Idempotency keys are unique per company; '' means the caller sent none.
CREATE UNIQUE INDEX strategy_revisions_request
    ON strategy_revisions (company_id, request_id) WHERE request_id <> '';
CREATE INDEX strategy_revisions_layer
    ON strategy_revisions (company_id, user_id, layer, version DESC);

-- Each user's subscription tier as their latest token said, so an admin can
-- manage the strategy of a user who is not calling right now.
CREATE TABLE users (
    company_id text    NOT NULL,
    user_id    text    NOT NULL,
    tier       integer NOT NULL,
    seen_at_ns bigint  NOT NULL,
    PRIMARY KEY (company_id, user_id)
);

-- Append-only decision history; a replayed prediction yields the same signal_id.
CREATE TABLE signals (
    company_id      text    NOT NULL,
    user_id         text    NOT NULL,
    signal_id       text    COLLATE "C" NOT NULL,
    generated_at_ns bigint  NOT NULL,
    symbol          text    NOT NULL,
    signal_type     integer NOT NULL,
    disposition     integer NOT NULL,
    -- The serialized TradingSignal, trace included.
    payload         bytea   NOT NULL,
    PRIMARY KEY (company_id, signal_id)
);

-- A user's history in (time, id) order: the keyset the queries page on.
CREATE INDEX signals_user_time ON signals (company_id, user_id, generated_at_ns, signal_id);
-- Retention deletes by age across every company.
CREATE INDEX signals_generated_at ON signals (generated_at_ns);

CREATE TABLE manual_signals (
    company_id     text   NOT NULL,
    request_id     text   NOT NULL,
    signal_id      text   NOT NULL,
    user_id        text   NOT NULL,
    injected_by    text   NOT NULL,
    injected_at_ns bigint NOT NULL,
    payload        bytea  NOT NULL,
    PRIMARY KEY (company_id, request_id)
);

CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id      text   NOT NULL,
    actor           text   NOT NULL,
    action          text   NOT NULL,
    -- '' for company-wide actions.
    subject_user_id text   NOT NULL,
    at_ns           bigint NOT NULL,
    -- A JSON object.
    detail          text   NOT NULL
);

CREATE INDEX audit_log_company ON audit_log (company_id, id DESC);
