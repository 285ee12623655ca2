"""Brute-force protection: every password guess is counted before it is evaluated, per account and address.

Counts live in the database, so every replica and process sees the same ones. Two keys per attempt:

- `pair:<account>|<address>`: the guesses at one account from one address. At the threshold the pair is
  locked out, and each further failure doubles the lock-out (base, twice that, … up to the maximum). Only
  that address is locked out of that account: everyone else behind the same address (an office NAT, a
  reverse proxy) and the account's owner elsewhere still get in.
- `account:<account>`: the guesses at one account from everywhere, against a guesser spread over many
  addresses. Its threshold is `ACCOUNT_FACTOR` times higher, and its lock-out applies only to addresses
  that have failed at this account themselves: each new address of a distributed guesser gets one guess,
  while an address with a clean record (the owner's) is never locked out by strangers.

Atomicity: `reserve` counts an attempt as a failure, under the rows' lock (PostgreSQL) or in SQLite's one
write transaction, before the password is checked; a success then takes it back. So concurrent guesses
cannot all pass the check before any of them is counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

from dockyard.auth.errors import Throttled
from dockyard.db import accounts as q
from dockyard.db.engine import Database
from dockyard.observability import metrics

log = logging.getLogger(__name__)

ACCOUNT_FACTOR = 10
# A guess being evaluated takes one argon2 hash (tens of milliseconds, more under load); attempts at the
# threshold wait this long at most for the guesses in flight before they are refused.
IN_FLIGHT_SECONDS = 10.0
IN_FLIGHT_WAIT_SECONDS = 10.0
IN_FLIGHT_POLL_SECONDS = 0.05
_WAIT = -1.0
# Failures are forgotten after a quiet period as long as the longest lock-out, and at least this long.
MIN_MEMORY_SECONDS = 3600


@dataclass
class LoginCounters:
    """Counts of this process's refused logins (not one audit row each), also reported as the metrics
    `dockyard_login_failures` and `dockyard_login_throttled`."""

    failures: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, failures: int = 0, throttled: int = 0) -> None:
        """Count refusals, here and in the Prometheus metrics."""
        with self._lock:
            self.failures += failures
            self.throttled += throttled
        for _ in range(failures):
            metrics.login_failed()
        for _ in range(throttled):
            metrics.login_throttled()


@dataclass(frozen=True)
class Reservation:
    """An attempt counted in advance: `succeeded` takes it back, `failed` keeps it."""

    account: q.AccountRow | None
    pair_key: str
    account_key: str


class LoginThrottle:
    """Decides whether a guess may be evaluated now, and counts it."""

    def __init__(self, db: Database, threshold: int, base_seconds: int, max_seconds: int) -> None:
        self.db = db
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.memory_seconds = max(max_seconds, MIN_MEMORY_SECONDS)
        self.counters = LoginCounters()

    def state(self, account: str, address: str | None) -> q.LoginState:
        """The account called `account` and its throttling counts, in one short read."""
        with self.db.read() as conn:
            return q.login_state(conn, account, pair_key(account, address), account_key(account))

    @staticmethod
    def may_skip_reservation(state: q.LoginState) -> bool:
        """Whether a login settled without evaluating a guess (a password verified lately) may go ahead
        without `reserve`: the pair has no failures, so no lock-out applies and nothing needs clearing."""
        return state.pair.failures == 0

    def reserve(self, account: str, address: str | None) -> Reservation:
        """Count an attempt before its guess is evaluated; raise Throttled when it may not be evaluated.

        A count at the threshold that earned no lock-out yet is made of guesses still being evaluated
        (a client's parallel requests, each logging in): this attempt waits for their outcome instead of
        being refused, so concurrent right passwords all get in, while wrong ones still cannot pass the
        threshold before the lock-out they earn is recorded.
        """
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while True:
            decision = self._try_reserve(account, address)
            if isinstance(decision, Reservation):
                return decision
            if decision == _WAIT and time.monotonic() < deadline:
                time.sleep(IN_FLIGHT_POLL_SECONDS)
                continue
            self.counters.add(throttled=1)
            raise Throttled(max(1, math.ceil(decision if decision != _WAIT else 1)))

    def _try_reserve(self, account: str, address: str | None) -> Reservation | float:
        """A reservation, or the seconds the attempt must wait (`_WAIT`: guesses in flight decide)."""
        keys = pair_key(account, address), account_key(account)
        now = time.time()
        # Not durable: a crash may forget a few counts, which costs nothing but a few more guesses.
        with self.db.write(durable=False) as conn:
            rows = q.lock_login_failures(conn, list(keys))
            pair, whole = (self._current(rows.get(key, q.FailureRow()), now) for key in keys)
            refused_until = pair.blocked_until
            if pair.failures > 0 and whole.blocked_until > refused_until:
                refused_until = whole.blocked_until
            if refused_until > now:
                # Nothing changes: refused attempts are not evaluated, so they do not lengthen the lock-out.
                return refused_until - now
            if self._in_flight(pair, self.threshold, now) or (
                pair.failures > 0 and self._in_flight(whole, self.threshold * ACCOUNT_FACTOR, now)
            ):
                return _WAIT
            row = q.account_by_name(conn, account)
            q.save_login_failures(conn, keys[0], self._attempt(pair, now))
            q.save_login_failures(conn, keys[1], self._attempt(whole, now))
        return Reservation(row, keys[0], keys[1])

    def succeeded(self, reservation: Reservation, signed_in_at: float | None = None) -> None:
        """Take back the attempt of a guess that was right: the pair's count is cleared, the account's
        count loses this attempt. `signed_in_at` also records the account's audited sign-in."""
        now = time.time()
        with self.db.write(durable=False) as conn:
            rows = q.lock_login_failures(conn, [reservation.pair_key, reservation.account_key])
            q.save_login_failures(conn, reservation.pair_key, q.FailureRow())
            whole = self._current(rows.get(reservation.account_key, q.FailureRow()), now)
            failures = max(whole.failures - 1, 0)
            blocked = whole.blocked_until if failures >= self.threshold * ACCOUNT_FACTOR else 0.0
            q.save_login_failures(
                conn, reservation.account_key, q.FailureRow(failures, whole.last_failure_at, blocked)
            )
            if signed_in_at is not None and reservation.account is not None:
                q.set_last_login(conn, reservation.account.id, signed_in_at)

    def failed(self, reservation: Reservation) -> bool:
        """The guess was wrong: the attempt stays counted, and at the threshold it earns its lock-out.
        Returns whether this failure started a lock-out (worth one audit event)."""
        self.counters.add(failures=1)
        now = time.time()
        with self.db.write(durable=False) as conn:
            rows = q.lock_login_failures(conn, [reservation.pair_key, reservation.account_key])
            pair = self._current(rows.get(reservation.pair_key, q.FailureRow()), now)
            whole = self._current(rows.get(reservation.account_key, q.FailureRow()), now)
            new_pair = self._blocked(pair, self.threshold, now)
            new_whole = self._blocked(whole, self.threshold * ACCOUNT_FACTOR, now)
            q.save_login_failures(conn, reservation.pair_key, new_pair)
            q.save_login_failures(conn, reservation.account_key, new_whole)
        locks_out = new_pair.blocked_until > max(pair.blocked_until, now) or (
            new_whole.blocked_until > max(whole.blocked_until, now)
        )
        if locks_out:
            log.warning("login locked out for %s", reservation.pair_key.removeprefix("pair:"))
        return locks_out

    def prune(self, now: float | None = None) -> int:
        """Forget counts past their quiet period (the lock-out they earned is over too)."""
        cutoff = (now if now is not None else time.time()) - self.memory_seconds
        with self.db.write(durable=False) as conn:
            return q.prune_login_failures(conn, cutoff)

    def _current(self, row: q.FailureRow, now: float) -> q.FailureRow:
        if row.failures and now - row.last_failure_at >= self.memory_seconds:
            return q.FailureRow()
        return row

    @staticmethod
    def _attempt(row: q.FailureRow, now: float) -> q.FailureRow:
        """The count with one more attempt, not yet judged."""
        return q.FailureRow(row.failures + 1, now, row.blocked_until)

    def _blocked(self, row: q.FailureRow, threshold: int, now: float) -> q.FailureRow:
        """The count after a wrong guess: from the threshold on, a lock-out doubling with each failure."""
        if row.failures < threshold:
            return row
        delay = min(self.base_seconds * 2.0 ** min(row.failures - threshold, 30), self.max_seconds)
        return q.FailureRow(row.failures, row.last_failure_at, max(row.blocked_until, now + delay))

    @staticmethod
    def _in_flight(row: q.FailureRow, threshold: int, now: float) -> bool:
        """At the threshold, no lock-out in force, and an attempt made since the last one ended (a moment
        ago): guesses are being evaluated, and their outcome decides (a wrong one locks out, a right one
        takes its count back)."""
        return (
            row.failures >= threshold
            and row.blocked_until <= now
            and row.last_failure_at > row.blocked_until
            and now - row.last_failure_at < IN_FLIGHT_SECONDS
        )


def account_key(account: str) -> str:
    """The throttling key of every guess at one account."""
    return f"account:{account[:100]}"


def pair_key(account: str, address: str | None) -> str:
    """The throttling key of the guesses at one account from one address."""
    return f"pair:{account[:64]}|{(address or '-')[:48]}"
