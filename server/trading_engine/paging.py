"""Opaque page tokens: a kind and the position to resume after, in URL-safe base64."""

from __future__ import annotations

import base64
import binascii

from trading_engine import errors

# Positions are 64-bit integers in the stores: at most 19 digits, at most 2^63 - 1.
_MAX_DIGITS = 19
_MAX_POSITION = 2**63 - 1


def page_token(kind: str, *position: int | str) -> str:
    raw = ":".join((kind, *(str(part) for part in position)))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def read_page_token(token: str, kind: str, parts: int, numbers: int = 0) -> list[str]:
    """The `parts` position fields of a token of `kind`, the first `numbers` of them digits
    of a number that fits a signed 64-bit integer.

    Anything else is INVALID_ARGUMENT: a client can only hand back what it was given.
    """
    try:
        fields = base64.urlsafe_b64decode(token.encode()).decode().split(":", parts)
    except (binascii.Error, UnicodeDecodeError):
        fields = []
    if (
        len(fields) != parts + 1
        or fields[0] != kind
        or not all(fields[1:])
        or not all(_is_position(field) for field in fields[1 : 1 + numbers])
    ):
        raise errors.invalid(
            "page_token is not a token this service issued",
            [errors.FieldViolation("page_token", "use a next_page_token from an earlier response")],
        )
    return fields[1:]


def _is_position(field: str) -> bool:
    # isascii: "²" is a digit to isdigit, not to int().
    return (
        field.isascii()
        and field.isdigit()
        and len(field) <= _MAX_DIGITS
        and int(field) <= _MAX_POSITION
    )
