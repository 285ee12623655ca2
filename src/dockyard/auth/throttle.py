"""Brute-force protection: failed logins per account and per source address earn a growing delay.

Counts live in the database, so every replica sees the same ones. Once a key reaches the threshold,
each further failure doubles its lock-out (base, twice that, four times … up to the maximum); a success clears
the account's count. Addresses get four times the threshold, since many users may share one.
"""

from __future__ import annotations

import math
import time

from dockyard.auth.errors import Throttled
from dockyard.db import accounts as q
from dockyard.db.engine import Database

ADDRESS_FACTOR = 4


class LoginThrottle:
    """Decides whether a login may be tried now, and records the outcome."""

    def __init__(self, db: Database, threshold: int, base_seconds: int, max_seconds: int) -> None:
        self.db = db
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds

    def check(self, account: str | None, address: str | None) -> None:
        """Raise Throttled when the account or address is locked out now."""
        keys = _keys(account, address)
        if not keys:
            return
        now = time.time()
        with self.db.read() as conn:
            until = q.blocked_keys(conn, keys, now)
        if until > now:
            raise Throttled(max(1, math.ceil(until - now)))

    def failure(self, account: str | None, address: str | None) -> int:
        """Count a failed login; returns the lock-out it earned in seconds (0 for none)."""
        now = time.time()
        longest = 0.0
        with self.db.write() as conn:
            for key in _keys(account, address):
                threshold = self.threshold * (ADDRESS_FACTOR if key.startswith("address:") else 1)
                previous = q.login_failure(conn, key)
                failures = 1
                # Old failures are forgotten after a quiet period as long as the longest lock-out.
                if previous is not None and now - previous[1] < max(self.max_seconds, 3600):
                    failures = previous[0] + 1
                delay = 0.0
                if failures >= threshold:
                    delay = min(self.base_seconds * 2.0 ** min(failures - threshold, 30), self.max_seconds)
                q.save_login_failure(conn, key, failures, now, now + delay)
                longest = max(longest, delay)
        return math.ceil(longest)

    def state(self, account: str, address: str | None) -> q.LoginState:
        """The account called `account`, its and the address's lock-out, and whether it has failures to
        clear: what a login reads, in one query."""
        with self.db.read() as conn:
            return q.login_state(conn, account, _account_key(account), _keys(account, address), time.time())

    @staticmethod
    def raise_if_blocked(state: q.LoginState) -> None:
        """Raise Throttled when the state read by `state` shows a lock-out in force."""
        now = time.time()
        if state.blocked_until > now:
            raise Throttled(max(1, math.ceil(state.blocked_until - now)))

    def success(self, account: str) -> None:
        """Forget the account's failures after a successful login (`state` tells whether there are any:
        a write on every login would serialise them)."""
        with self.db.write() as conn:
            q.clear_login_failures(conn, _account_key(account))


def _account_key(account: str) -> str:
    return f"account:{account[:100]}"


def _keys(account: str | None, address: str | None) -> list[str]:
    keys = []
    if account:
        keys.append(_account_key(account))
    if address:
        keys.append(f"address:{address[:100]}")
    return keys
