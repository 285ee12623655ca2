"""Whether the user behind a registry token may still use it.

A registry token is verified by its signature alone, so on its own it outlives a deactivation or deletion
of its user by up to its lifetime (`token_ttl_seconds`). The resolver asks this class instead; the answer is
read from the database (one indexed read) and kept in this process for `ttl_seconds`, so a pull's many
requests cost one read per user and window, and a deactivation takes effect on every replica within that
window. Bounded: least recently used users fall out first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from enum import Enum

from dockyard.db import accounts as q
from dockyard.db.engine import Database


class Standing(Enum):
    """Where a token's user stands."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    GONE = "gone"


class AccountStanding:
    """A short-lived, bounded cache of each user's standing, keyed by account id."""

    def __init__(self, db: Database, ttl_seconds: float, capacity: int = 4096) -> None:
        self.db = db
        self.ttl_seconds = ttl_seconds
        self._capacity = capacity
        self._items: OrderedDict[int, tuple[float, Standing]] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, user_id: int) -> Standing | None:
        """The standing read less than `ttl_seconds` ago, or None when it must be read again."""
        now = time.monotonic()
        with self._lock:
            item = self._items.get(user_id)
            if item is None or now - item[0] >= self.ttl_seconds:
                return None
            self._items.move_to_end(user_id)
            return item[1]

    def read(self, user_id: int) -> Standing:
        """Read the user's standing from the database, and remember it."""
        with self.db.read() as conn:
            row = q.account_by_id(conn, user_id)
        if row is None or row.kind != q.USER:
            standing = Standing.GONE
        else:
            standing = Standing.ACTIVE if row.is_active else Standing.DEACTIVATED
        with self._lock:
            self._items[user_id] = (time.monotonic(), standing)
            self._items.move_to_end(user_id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return standing
