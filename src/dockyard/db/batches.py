"""Long `IN (...)` lists split into batches: each value is a bound parameter, and both databases cap them
per statement (PostgreSQL at 65,535; SQLite at 32,766 by default, 250,000 in Debian's build)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

IN_BATCH = 500


def batches(values: Iterable[T], size: int = IN_BATCH) -> Iterator[list[T]]:
    """The values in lists of at most `size`, in order."""
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
