"""Logging: readable lines for people, or one JSON object per line for log collectors.

Whatever is being handled when a line is logged (the tenant, the message and
correlation ids of a bus message, the signal an execution result is for) is
kept in a context variable, so every line about it carries those fields
without each log call naming them. A call may add fields of its own to its
one line (`extra=fields(...)`), nested values included.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Final

_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers at the engine's level; every other one (the libraries') at the library level.
OWN_LOGGERS: Final = ("trading_engine", "trading_engine_client", "bench")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context")
# The LogRecord attribute that carries one line's own fields.
_LINE_FIELDS: Final = "line_fields"


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields to every line logged inside the block (and the tasks it starts)."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Add fields to every line the current task logs from now on (each gRPC call is a task)."""
    _context.set({**_context.get({}), **fields})


def context() -> Mapping[str, str]:
    """The fields the current context adds to every line."""
    return _context.get({})


def fields(**values: object) -> dict[str, object]:
    """The `extra` of one logging call whose JSON line carries `values` (JSON-serializable)."""
    return {_LINE_FIELDS: values}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get({}),
            **getattr(record, _LINE_FIELDS, {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure(level: str, log_format: str, library_level: str = "WARNING") -> None:
    """Log to stderr, as "text" or "json" lines (config.LOG_FORMATS): the engine's own lines
    from `level` up, the libraries' (aiokafka's group joins, say) from `library_level` up."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT)
    # UTC, as the JSON's trailing Z says.
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=library_level.upper(), handlers=[handler], force=True)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
