"""Strict parsing of the numbers clients send in headers and query strings.

Python's int() and str.isdigit() accept far more than HTTP does: Unicode digits ('١٢', '²'), signs,
underscores, surrounding whitespace, and thousands of digits (which int() refuses with a ValueError).
HTTP numbers are ASCII digits only; Dockyard also bounds them to a signed 64-bit integer.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from dockyard.content.errors import SizeInvalid

MAX_INT64 = (1 << 63) - 1
# 19 digits hold every value up to MAX_INT64; longer strings are refused before conversion.
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_count(value: str) -> int | None:
    """The value as a non-negative 64-bit integer, or None when it is anything else."""
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_INT64 else None


def content_length(request: Request) -> int | None:
    """The request's Content-Length, None when absent; SizeInvalid (400) when it is not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    length = parse_count(value.strip(" \t"))
    if length is None:
        raise SizeInvalid(f"invalid Content-Length {value[:100]!r}")
    return length
