"""Opaque page tokens: a kind and the position to resume after, in URL-safe base64."""

from __future__ import annotations

import base64
import binascii

from trading_engine import errors


def page_token(kind: str, *position: int | str) -> str:
    raw = ":".join((kind, *(str(part) for part in position)))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def read_page_token(token: str, kind: str, parts: int, numbers: int = 0) -> list[str]:
    """The `parts` position fields of a token of `kind`, the first `numbers` of them digits.

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
        or not all(field.isdigit() for field in fields[1 : 1 + numbers])
    ):
        raise errors.invalid(
            "page_token is not a token this service issued",
            [errors.FieldViolation("page_token", "use a next_page_token from an earlier response")],
        )
    return fields[1:]
