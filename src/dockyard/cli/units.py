"""Sizes and durations as people write them on a command line: `10GiB`, `500MB`, `7d`, `90m`."""

from __future__ import annotations

import re
from collections.abc import Callable

import click

# ASCII digits only, no spaces: `\d` would take other scripts' digits too.
_SIZE = re.compile(r"([0-9]{1,15})([kmgt]i?b?|b)?", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_DURATION = re.compile(r"([0-9]{1,9})([smhdw]?)", re.IGNORECASE)
_DURATION_FACTORS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """Bytes from `123`, `10GiB` (powers of 1024), `10GB` or `10G` (powers of 1000)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 500MiB or 10GB")
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    if "i" in unit:
        return int(number * 1024 ** ("kmgt".index(unit[0]) + 1))
    return number * _SIZE_FACTORS[unit.rstrip("b")]


def parse_duration(text: str) -> int:
    """Seconds from `3600`, `90m`, `12h`, `7d` or `2w`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90m, 12h or 7d")
    return int(match.group(1)) * _DURATION_FACTORS[match.group(2).lower()]


def size_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback turning an option's text into bytes (None stays None)."""
    return _convert(parse_size, param, value)


def duration_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A click callback turning an option's text into seconds (None stays None)."""
    return _convert(parse_duration, param, value)


def _convert(parse: Callable[[str], int], param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from exc
