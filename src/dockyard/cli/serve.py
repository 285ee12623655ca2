"""`dockyard serve`: run the registry."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.log import LogLevels
from granian.server import Server
from starlette.applications import Starlette

from dockyard import config
from dockyard.app import create_app
from dockyard.cli.options import data_options, settings_from
from dockyard.config import ConfigError, Settings
from dockyard.memory import tune_allocator
from dockyard.observability import multiprocess
from dockyard.observability.logs import LOG_FORMATS, configure_logging, logging_config
from dockyard.tls.serving import check_external_url, resolve_tls

log = logging.getLogger("dockyard")
_PR_SET_PDEATHSIG = 1


def _default_workers() -> int:
    # All state is in the database and the blob store, so workers share nothing; past 8 they mostly
    # contend for the SQLite write lock.
    return max(1, min(os.cpu_count() or 1, 8))


def _check_bindable(host: str, port: int) -> None:
    """Fail cleanly, before any set-up, when the address cannot be listened on (foreign or busy)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option the server uses, so a port left in TIME_WAIT by a restart is not "busy".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _worker_app(settings: Settings) -> Starlette:
    """Runs in each worker process: its own database pool and services, built after the fork."""
    if sys.platform == "linux":
        # A killed parent must take its workers down at once, as one process would go: a worker left
        # behind would keep the port, and one finishing its requests would make a crash look graceful.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(0)
    return create_app(settings)


@click.command()
@data_options
@click.option(
    "--listen",
    envvar="DOCKYARD_LISTEN",
    metavar="HOST:PORT",
    help="Address to listen on (default 0.0.0.0:5000).",
)
@click.option(
    "--external-url",
    envvar="DOCKYARD_EXTERNAL_URL",
    help="The URL clients use to reach this registry, e.g. https://registry.example.com.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DOCKYARD_TLS_CERT",
    help="Server certificate (PEM, may include the chain).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DOCKYARD_TLS_KEY",
    help="Server private key (PEM).",
)
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DOCKYARD_TLS_CA",
    help="CA certificate published at GET /ca.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    envvar="DOCKYARD_WORKERS",
    help="Worker processes serving requests (default: the number of CPUs, at most 8).",
)
@click.option(
    "--log-level",
    envvar="DOCKYARD_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity (default info).",
)
@click.option(
    "--log-format",
    envvar="DOCKYARD_LOG_FORMAT",
    type=click.Choice(LOG_FORMATS),
    help="Log lines as plain text (default) or one JSON object per line.",
)
def serve(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    listen: str | None,
    external_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    workers: int | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run the registry: /v2/ for clients, /_ping for health checks.

    With no options it keeps everything in one data directory (SQLite and a filesystem blob store)
    and listens on 0.0.0.0:5000. It serves HTTPS when given --tls-cert and --tls-key, or when the
    data directory holds certificates made by `dockyard certs init`.
    """
    tune_allocator()
    settings = settings_from(
        config_file,
        data_dir=data_dir,
        database_url=database_url,
        listen=listen,
        external_url=external_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
        log_level=log_level,
        log_format=log_format,
    )
    configure_logging(settings.log_level, settings.log_format)
    try:
        tls = resolve_tls(settings)
        check_external_url(settings, tls is not None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if tls is not None:
        for warning in tls.warnings:
            log.warning("%s", warning)
    _check_bindable(settings.listen_host, settings.listen_port)
    metrics_dir = multiprocess.default_directory(settings.listen_host, settings.listen_port)
    try:
        multiprocess.prepare(metrics_dir)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(f"cannot prepare the metrics directory: {exc}") from exc
    # Before anything counts: every process from here on, and the workers forked later, share the directory.
    multiprocess.enable(metrics_dir)
    try:
        # Build once here (migrations, first-start set-up) so errors show before listening and the
        # workers find everything ready; each worker then builds its own after the fork.
        services = create_app(settings).state.services
        # No worker of this replica runs yet: upload sessions still marked as written by it were cut
        # short when it last stopped.
        freed = services.uploads.recover_writers()
        if freed:
            log.info("%d upload sessions cut short by the last stop may resume", freed)
        services.db.close()
    except Exception as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    scheme = "https" if tls else "http"
    count = workers or _default_workers()
    log.info(
        "Dockyard starting on %s://%s (data in %s, settings file %s, %d workers)",
        scheme,
        settings.listen,
        settings.data_dir,
        config.config_file() or "none",
        count,
    )
    tls_options: dict[str, Any] = {}
    if tls is not None:
        # TLS 1.2 stays allowed: older Docker engines and containerd builds still negotiate it.
        tls_options = {"ssl_cert": tls.cert, "ssl_key": tls.key, "ssl_protocol_min": SSLProtocols.tls12}
    server = Server(
        # Granian needs a target name; the loader below builds the app instead of importing it.
        "dockyard.app:create_app",
        address=settings.listen_host,
        port=settings.listen_port,
        interface=Interfaces.ASGI,
        workers=count,
        http=HTTPModes.http1 if tls is None else HTTPModes.auto,
        log_level=LogLevels(settings.log_level),
        log_dictconfig=logging_config(settings.log_level, settings.log_format),
        # Dockyard writes its own access log, with the request id and user (dockyard.observability).
        log_access=False,
        **tls_options,
    )
    try:
        server.serve(target_loader=partial(_worker_app, settings), wrap_loader=False)
    except RuntimeError as exc:
        # Granian reports a bind lost to a race after our probe this way.
        raise click.ClickException(f"cannot serve on {settings.listen}: {exc}") from exc
    finally:
        multiprocess.remove(metrics_dir)
