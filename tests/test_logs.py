"""JSON log lines carry the context they were logged in; text lines stay readable."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from trading_engine import logs
from trading_engine.config import EngineSettings


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("trading_engine.bus", logging.WARNING, __file__, 1, message, (), None)


def test_a_json_line_carries_the_fields_of_every_enclosing_context() -> None:
    formatter = logs.JsonFormatter()
    with logs.log_context(company_id="acme", user_id="trader-1"):
        with logs.log_context(message_id="m-1", correlation_id="c-1"):
            inner = json.loads(formatter.format(_record("dead letter")))
        outer = json.loads(formatter.format(_record("after")))
    outside = json.loads(formatter.format(_record("outside")))

    assert inner["message"] == "dead letter"
    assert (inner["level"], inner["logger"]) == ("WARNING", "trading_engine.bus")
    assert inner["time"].endswith("Z")
    assert {k: inner[k] for k in ("company_id", "user_id", "message_id", "correlation_id")} == {
        "company_id": "acme",
        "user_id": "trader-1",
        "message_id": "m-1",
        "correlation_id": "c-1",
    }
    assert "message_id" not in outer
    assert outer["company_id"] == "acme"
    assert "company_id" not in outside


def test_a_line_carries_its_own_fields_nested_beside_the_context() -> None:
    record = _record("strategy.update by ops-1")
    record.__dict__.update(logs.fields(audit={"old": {"max_position_count": 3}, "new": {}}))
    with logs.log_context(company_id="acme"):
        line = json.loads(logs.JsonFormatter().format(record))
        assert logs.context() == {"company_id": "acme"}

    assert line["company_id"] == "acme"
    assert line["audit"] == {"old": {"max_position_count": 3}, "new": {}}
    # Another line does not inherit them.
    assert "audit" not in json.loads(logs.JsonFormatter().format(_record("next")))


def test_an_exception_is_kept_in_the_json_line() -> None:
    try:
        raise RuntimeError("store down")
    except RuntimeError:
        record = logging.LogRecord(
            "trading_engine", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(logs.JsonFormatter().format(record))
    assert "RuntimeError: store down" in line["exception"]


def test_the_engine_refuses_an_unknown_log_format() -> None:
    with pytest.raises(ValueError, match="log_format must be one of"):
        EngineSettings(log_format="xml")
