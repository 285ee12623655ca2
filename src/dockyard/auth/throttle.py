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

Without a quorum (the database answers reads but takes no writes), a login whose secret verifies still gets
in: the counts the database holds still apply, and each process counts further attempts in memory
(`FallbackCounts`) until writes work again. The audited sign-in time is not recorded meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from dockyard.auth.errors import Throttled
from dockyard.db import accounts as q
from dockyard.db.engine import Database, DatabaseReadOnly
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


class FallbackCounts:
    """This process's own counts, used only while the database takes no writes (a cluster without quorum):
    refusing every login then would be wrong, and not counting would let guesses through unbounded.

    Each process counts on its own, so a guesser gets the threshold's worth of guesses per process before
    its lock-out (instead of per cluster). At most `MAX_KEYS` keys, the least recently used forgotten first.
    """

    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._rows: OrderedDict[str, q.FailureRow] = OrderedDict()

    def get(self, key: str, seed: q.FailureRow) -> q.FailureRow:
        """The count of `key`: this process's, never below `seed` (what the database holds)."""
        mine = self._rows.get(key)
        if mine is None:
            return seed
        return q.FailureRow(
            max(mine.failures, seed.failures),
            max(mine.last_failure_at, seed.last_failure_at),
            max(mine.blocked_until, seed.blocked_until),
        )

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, key: str, row: q.FailureRow) -> None:
        """Remember the count of `key` (a count of zero forgets it); call with `lock` held."""
        self._rows.pop(key, None)
        if row.failures > 0 or row.blocked_until > 0:
            self._rows[key] = row
            while len(self._rows) > self.MAX_KEYS:
                self._rows.popitem(last=False)


@dataclass(frozen=True)
class Reservation:
    """An attempt counted in advance: `succeeded` takes it back, `failed` keeps it."""

    account: q.AccountRow | None
    pair_key: str
    account_key: str
    # Counted by this process's fallback (the database took no writes), not in the database.
    in_memory: bool = False


class LoginThrottle:
    """Decides whether a guess may be evaluated now, and counts it."""

    def __init__(self, db: Database, threshold: int, base_seconds: int, max_seconds: int) -> None:
        self.db = db
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.memory_seconds = max(max_seconds, MIN_MEMORY_SECONDS)
        self.counters = LoginCounters()
        self.fallback = FallbackCounts()

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

        def count(conn: Connection) -> Reservation | float:
            rows = q.lock_login_failures(conn, list(keys))
            pair, whole = (self._current(rows.get(key, q.FailureRow()), now) for key in keys)
            wait = self._judge(pair, whole, now)
            if wait is not None:
                return wait
            row = q.account_by_name(conn, account)
            q.save_login_failures(conn, keys[0], self._attempt(pair, now))
            q.save_login_failures(conn, keys[1], self._attempt(whole, now))
            return Reservation(row, keys[0], keys[1])

        try:
            # Not durable: a crash may forget a few counts, which costs nothing but a few more guesses.
            # Retried when cut (concurrent logins can deadlock on the rows): at worst an attempt whose
            # COMMIT was cut is counted twice, on the safe side.
            return self.db.write_retrying(count, durable=False)
        except DatabaseReadOnly:
            return self._reserve_in_memory(account, address, now)

    def _reserve_in_memory(self, account: str, address: str | None, now: float) -> Reservation | float:
        """`_try_reserve` while the database takes no writes (no quorum): the counts it holds still apply
        (read from a standby), and this process counts further attempts in memory on top of them."""
        state = self.state(account, address)
        keys = pair_key(account, address), account_key(account)
        # The read gives no time of the last failure: "a while ago" keeps the counts alive (not forgotten)
        # without taking them for guesses in flight.
        seen = now - IN_FLIGHT_SECONDS
        seeds = (
            q.FailureRow(state.pair.failures, seen, state.pair.blocked_until),
            q.FailureRow(state.account_failures.failures, seen, state.account_failures.blocked_until),
        )
        with self.fallback.lock:
            pair, whole = (
                self._current(self.fallback.get(key, seed), now)
                for key, seed in zip(keys, seeds, strict=True)
            )
            wait = self._judge(pair, whole, now)
            if wait is not None:
                return wait
            self.fallback.put(keys[0], self._attempt(pair, now))
            self.fallback.put(keys[1], self._attempt(whole, now))
        metrics.write_skipped("login_throttle")
        log.info("the database takes no writes: login attempts for %s counted in memory", account[:64])
        return Reservation(state.account, keys[0], keys[1], in_memory=True)

    def _judge(self, pair: q.FailureRow, whole: q.FailureRow, now: float) -> float | None:
        """None when an attempt may be evaluated now, else the seconds it must wait (`_WAIT`: guesses in
        flight decide)."""
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
        return None

    def succeeded(self, reservation: Reservation, signed_in_at: float | None = None) -> None:
        """Take back the attempt of a guess that was right: the pair's count is cleared, the account's
        count loses this attempt. `signed_in_at` also records the account's audited sign-in (skipped while
        the database takes no writes: the login itself goes ahead)."""
        now = time.time()
        keys = [reservation.pair_key, reservation.account_key]
        if not reservation.in_memory:

            def take_back(conn: Connection) -> None:
                rows = q.lock_login_failures(conn, keys)
                for key, row in self._taken_back(rows, reservation, now):
                    q.save_login_failures(conn, key, row)
                if signed_in_at is not None and reservation.account is not None:
                    q.set_last_login(conn, reservation.account.id, signed_in_at)

            try:
                self.db.write_retrying(take_back, durable=False)
                return
            except DatabaseReadOnly:
                # The attempt stays counted in the database: one failure too many, harmless.
                metrics.write_skipped("login_throttle")
                return
        with self.fallback.lock:
            rows = {key: self.fallback.get(key, q.FailureRow()) for key in keys}
            for key, row in self._taken_back(rows, reservation, now):
                self.fallback.put(key, row)

    def _taken_back(
        self, rows: dict[str, q.FailureRow], reservation: Reservation, now: float
    ) -> list[tuple[str, q.FailureRow]]:
        """The counts after a right guess took its attempt back."""
        whole = self._current(rows.get(reservation.account_key, q.FailureRow()), now)
        failures = max(whole.failures - 1, 0)
        blocked = whole.blocked_until if failures >= self.threshold * ACCOUNT_FACTOR else 0.0
        return [
            (reservation.pair_key, q.FailureRow()),
            (reservation.account_key, q.FailureRow(failures, whole.last_failure_at, blocked)),
        ]

    def failed(self, reservation: Reservation) -> bool:
        """The guess was wrong: the attempt stays counted, and at the threshold it earns its lock-out.
        Returns whether this failure started a lock-out (worth one audit event)."""
        self.counters.add(failures=1)
        now = time.time()
        keys = [reservation.pair_key, reservation.account_key]
        locks_out: bool | None = None
        if not reservation.in_memory:

            def keep(conn: Connection) -> bool:
                rows = q.lock_login_failures(conn, keys)
                changes, locks_out = self._judged_failure(rows, reservation, now)
                for key, row in changes:
                    q.save_login_failures(conn, key, row)
                return locks_out

            try:
                locks_out = self.db.write_retrying(keep, durable=False)
            except DatabaseReadOnly:
                metrics.write_skipped("login_throttle")
        if locks_out is None:
            with self.fallback.lock:
                rows = {key: self.fallback.get(key, q.FailureRow()) for key in keys}
                changes, locks_out = self._judged_failure(rows, reservation, now)
                for key, row in changes:
                    self.fallback.put(key, row)
        if locks_out:
            log.warning("login locked out for %s", reservation.pair_key.removeprefix("pair:"))
        return locks_out

    def _judged_failure(
        self, rows: dict[str, q.FailureRow], reservation: Reservation, now: float
    ) -> tuple[list[tuple[str, q.FailureRow]], bool]:
        """The counts after a wrong guess, and whether it started a lock-out."""
        pair = self._current(rows.get(reservation.pair_key, q.FailureRow()), now)
        whole = self._current(rows.get(reservation.account_key, q.FailureRow()), now)
        new_pair = self._blocked(pair, self.threshold, now)
        new_whole = self._blocked(whole, self.threshold * ACCOUNT_FACTOR, now)
        locks_out = new_pair.blocked_until > max(pair.blocked_until, now) or (
            new_whole.blocked_until > max(whole.blocked_until, now)
        )
        return [(reservation.pair_key, new_pair), (reservation.account_key, new_whole)], locks_out

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
