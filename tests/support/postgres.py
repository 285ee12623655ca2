"""A throwaway PostgreSQL server from Debian's package, with trust authentication on 127.0.0.1."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from .processes import free_port, remove_tree, run, short_tempdir

SUPERUSER = "postgres"


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/N/bin that has initdb."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package postgresql): run scripts/test")
    return found[-1].parent


class PostgresServer:
    """One `postgres` cluster in a temp dir; `create_database()` hands out fresh databases."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bindir = postgres_bindir()
        # Tests trade durability for speed; the benchmark (bench/) keeps fsync on to measure the real cost.
        self.fsync = fsync
        self.port = free_port()
        self.base = short_tempdir("dys-pg-")
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_path = self.base / "postgres.log"
        self._names = itertools.count(1)
        self._started = False

    def _as_owner(self, *argv: str | Path) -> list[str]:
        # PostgreSQL refuses to run as root; the Debian package created the `postgres` user for it.
        prefix = ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []
        return [*prefix, *map(str, argv)]

    def start(self, timeout: float = 60) -> None:
        """initdb and start; returns once the server accepts connections."""
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            for path in (self.base, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        run(
            self._as_owner(
                self.bindir / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--no-sync",
            ),
            timeout=timeout,
        )  # fmt: skip
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        options += f" -c fsync={'on' if self.fsync else 'off'}"
        atexit.register(self.stop)
        self._started = True
        try:
            run(
                self._as_owner(
                    self.bindir / "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_path,
                    "-w", "-t", str(int(timeout)), "-o", options,
                ),
                timeout=timeout + 10,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {error}\n{self.log()}") from error

    @property
    def admin_conninfo(self) -> str:
        """libpq connection string for the `postgres` maintenance database."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres connect_timeout=10"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh unique name unless given); returns its SQLAlchemy URL."""
        name = name or f"dockyard_test_{next(self._names)}"
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def log(self, tail: int = 6000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def restart(self, timeout: float = 60) -> None:
        """Restart the server (fast shutdown: every client connection is closed); returns once it accepts
        connections again."""
        run(
            self._as_owner(
                self.bindir / "pg_ctl", "restart", "-D", self.data_dir, "-l", self.log_path, "-m", "fast",
                "-w", "-t", str(int(timeout)),
            ),
            timeout=timeout + 10,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and delete its files."""
        if self._started:
            self._started = False
            atexit.unregister(self.stop)
            self._shut_down()
        remove_tree(self.base)

    def _shut_down(self) -> None:
        for mode in ("fast", "immediate"):
            stopped = run(
                self._as_owner(
                    self.bindir / "pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", "30"
                ),
                timeout=40,
                check=False,
            )
            if stopped.returncode == 0 or not (self.data_dir / "postmaster.pid").exists():
                return
        self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
