"""The Range header of a blob GET, parsed as RFC 9110 section 14 defines it.

The outcome is one of: serve the whole blob (no Range, a unit other than bytes, a syntax error, several
ranges, or an If-Range that does not match); serve one satisfiable range (206); or refuse (416): no range
overlaps the blob, or a range ends before it starts (RFC 9110 lets a server reject such a header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.registry.numbers import parse_count

# bytes=<spec>[,<spec>...]; the unit is case-insensitive; optional whitespace around commas.
_RANGES = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)", re.DOTALL)
_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# More specs than this is a denial-of-service pattern (RFC 9110 14.2): ignored, the whole blob is sent.
MAX_SPECS = 100


@dataclass(frozen=True)
class ByteRange:
    """Bytes start..end of the blob, both included."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """The Range cannot be served: answer 416 with Content-Range: bytes */size."""


def _spec(text: str, size: int) -> ByteRange | None:
    """One range-spec resolved against the size; None when it overlaps nothing. ValueError on bad syntax."""
    match = _SPEC.fullmatch(text)
    if match is None or match[0] == "-":
        raise ValueError(text)
    first, last = match[1], match[2]
    if first == "":
        suffix = parse_count(last)
        if suffix is None:
            raise ValueError(text)
        return ByteRange(max(size - suffix, 0), size - 1) if suffix > 0 and size > 0 else None
    start = parse_count(first)
    end = parse_count(last) if last else size - 1
    if start is None or end is None:
        raise ValueError(text)
    if last and end < start:
        raise RangeNotSatisfiable(f"range {text} ends before it starts")
    if start >= size:
        return None
    return ByteRange(start, min(end, size - 1))


def requested_range(header: str | None, size: int, if_range: str | None, etag: str) -> ByteRange | None:
    """The one range to send, or None for the whole blob; raises RangeNotSatisfiable for a 416."""
    if header is None or (if_range is not None and if_range.strip() != etag):
        return None
    match = _RANGES.fullmatch(header.strip())
    if match is None or match[1].lower() != "bytes":
        return None
    specs = [part.strip(" \t") for part in match[2].split(",")]
    specs = [part for part in specs if part]
    if not specs or len(specs) > MAX_SPECS:
        return None
    try:
        resolved = [_spec(part, size) for part in specs]
    except ValueError:
        return None
    satisfiable = [r for r in resolved if r is not None]
    if not satisfiable:
        raise RangeNotSatisfiable("no requested range overlaps the blob")
    # Several ranges: the whole blob is one valid answer (RFC 9110 14.2), and the cheapest to check.
    return satisfiable[0] if len(satisfiable) == 1 and len(specs) == 1 else None
