-- Strategy layers, signal history, manual signals and the audit log.
-- Nanosecond times are Unix-epoch integers; enums are the protobuf values.

-- Each change to a layer appends a revision; nothing is updated in place.
CREATE TABLE strategy_revisions (
    -- One sequence across every layer of every company; AUTOINCREMENT never reuses a number.
    version        INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id     TEXT    NOT NULL,
    -- '' for the company layer.
    user_id        TEXT    NOT NULL,
    layer          INTEGER NOT NULL,
    changed_by     TEXT    NOT NULL,
    changed_at_ns  INTEGER NOT NULL,
    -- JSON arrays of field paths, and serialized StrategyConfig messages.
    changed_fields TEXT    NOT NULL,
    changes        BLOB    NOT NULL,
    layer_fields   TEXT    NOT NULL,
    layer_config   BLOB    NOT NULL,
    reason         TEXT    NOT NULL,
    request_id     TEXT    NOT NULL
) STRICT;

-- Idempotency keys are unique per company; '' means the caller sent none.
CREATE UNIQUE INDEX strategy_revisions_request
    ON strategy_revisions (company_id, request_id) WHERE request_id <> '';
CREATE INDEX strategy_revisions_layer
    ON strategy_revisions (company_id, user_id, layer, version DESC);

-- Each user's subscription tier as their latest token said, so an admin can
-- manage the strategy of a user who is not calling right now.
CREATE TABLE users (
    company_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    tier       INTEGER NOT NULL,
    seen_at_ns INTEGER NOT NULL,
    PRIMARY KEY (company_id, user_id)
) STRICT;

-- Append-only decision history; a replayed prediction yields the same signal_id.
CREATE TABLE signals (
    company_id      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    signal_id       TEXT    NOT NULL,
    generated_at_ns INTEGER NOT NULL,
    symbol          TEXT    NOT NULL,
    signal_type     INTEGER NOT NULL,
    disposition     INTEGER NOT NULL,
    -- The serialized TradingSignal, trace included.
    payload         BLOB    NOT NULL,
    PRIMARY KEY (company_id, signal_id)
) STRICT;

-- A user's history in (time, id) order: the keyset the queries page on.
CREATE INDEX signals_user_time ON signals (company_id, user_id, generated_at_ns, signal_id);
-- Retention deletes by age across every company.
CREATE INDEX signals_generated_at ON signals (generated_at_ns);

CREATE TABLE manual_signals (
    company_id     TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    signal_id      TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    injected_by    TEXT    NOT NULL,
    injected_at_ns INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    PRIMARY KEY (company_id, request_id)
) STRICT;

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id      TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    -- '' for company-wide actions.
    subject_user_id TEXT    NOT NULL,
    at_ns           INTEGER NOT NULL,
    -- A JSON object.
    detail          TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_company ON audit_log (company_id, id DESC);
