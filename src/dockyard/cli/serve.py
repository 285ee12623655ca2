"""`dockyard serve`: run the registry."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import uvicorn

from dockyard.app import create_app
from dockyard.cli.options import data_options, settings_from
from dockyard.config import ConfigError
from dockyard.tls.serving import resolve_tls

log = logging.getLogger("dockyard")


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
    "--log-level",
    envvar="DOCKYARD_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity (default info).",
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
    log_level: str | None,
) -> None:
    """Run the registry: /v2/ for clients, /_ping for health checks.

    With no options it keeps everything in one data directory (SQLite and a filesystem blob store)
    and listens on 0.0.0.0:5000. It serves HTTPS when given --tls-cert and --tls-key, or when the
    data directory holds certificates made by `dockyard certs init`.
    """
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
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        tls = resolve_tls(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if tls is not None:
        for warning in tls.warnings:
            log.warning("%s", warning)
    try:
        app = create_app(settings)
    except Exception as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    scheme = "https" if tls else "http"
    log.info("Dockyard listening on %s://%s (data in %s)", scheme, settings.listen, settings.data_dir)
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        server_header=False,
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run()
