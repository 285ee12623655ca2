"""`dockyard cache`: run a cache node near users, and manage the main registry's list of caches."""

from __future__ import annotations

import json
import logging
import ssl
import tomllib
from pathlib import Path
from typing import Any

import click
import httpx
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.log import LogLevels
from granian.server import Server
from starlette.applications import Starlette

from dockyard.cache.directory import Cache
from dockyard.cache.node import CacheNodeSettings, create_cache_app
from dockyard.cli.options import local_services, registry_options
from dockyard.cli.units import duration_option, parse_duration, parse_size, size_option

log = logging.getLogger("dockyard")


@click.group()
def cache() -> None:
    """Content caches near users: run one (`serve`), and register them on the main registry.

    A cache keeps the blobs its users pull on its own disk. Users keep pulling from the main registry's
    URL; the registry redirects each blob request of a user whose profile names a cache to that cache,
    with a signed grant for that one blob. The cache holds no credentials.
    """


def _file_defaults(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        section = tomllib.loads(config_file.read_text()).get("cache", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"cannot read {config_file}: {exc}") from exc
    if not isinstance(section, dict):
        raise click.ClickException(f"{config_file}: [cache] must be a table")
    return section


def _cache_app(settings: CacheNodeSettings) -> Starlette:
    return create_cache_app(settings)


@cache.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="DOCKYARD_CONFIG",
    help="TOML file whose [cache] table holds these settings (options and environment override it).",
)
@click.option(
    "--upstream", envvar="DOCKYARD_CACHE_UPSTREAM", help="The main registry's URL, or another cache's."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DOCKYARD_CACHE_DATA_DIR",
    help="Where the cached blobs live (kept across restarts).",
)
@click.option(
    "--listen", envvar="DOCKYARD_CACHE_LISTEN", metavar="HOST:PORT", help="Address (default 0.0.0.0:5001)."
)
@click.option(
    "--max-size",
    callback=size_option,
    envvar="DOCKYARD_CACHE_MAX_SIZE",
    help="Disk the cache may use, e.g. 50GiB (default 10GiB); least recently used blobs go first.",
)
@click.option(
    "--ttl",
    callback=duration_option,
    envvar="DOCKYARD_CACHE_TTL",
    help="Drop a blob this long after it was fetched, e.g. 7d (default: keep until evicted).",
)
@click.option(
    "--upstream-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="DOCKYARD_CACHE_UPSTREAM_CA",
    help="CA certificate to trust for the upstream's HTTPS (default: the system's).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="DOCKYARD_CACHE_TLS_CERT",
    help="Serve HTTPS with this certificate (PEM, may include the chain).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="DOCKYARD_CACHE_TLS_KEY",
    help="The certificate's private key (PEM).",
)
def serve(
    config_file: Path | None,
    upstream: str | None,
    data_dir: Path | None,
    listen: str | None,
    max_size: int | None,
    ttl: int | None,
    upstream_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run a cache node for the registry at --upstream.

    It serves only blob requests that carry the main registry's grant (users reach it through the
    registry's redirect), fetches a missing blob from the upstream once however many users ask, keeps it
    only if its digest matches, and answers GET /_ping with its counters.
    """
    defaults = _file_defaults(config_file)
    upstream = upstream or defaults.get("upstream")
    data_dir = data_dir or (Path(defaults["data_dir"]) if "data_dir" in defaults else None)
    if not upstream or not upstream.startswith(("http://", "https://")):
        raise click.ClickException("--upstream must be the registry's http:// or https:// URL")
    if data_dir is None:
        raise click.ClickException("--data-dir is required: the directory for the cached blobs")
    listen = listen or str(defaults.get("listen", "0.0.0.0:5001"))
    host, _, port = listen.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise click.ClickException("--listen must be HOST:PORT, for example 0.0.0.0:5001")
    try:
        max_bytes = max_size or parse_size(str(defaults.get("max_size", "10GiB")))
        ttl_seconds = ttl or (parse_duration(str(defaults["ttl"])) if "ttl" in defaults else None)
    except ValueError as exc:
        raise click.ClickException(f"[cache] in {config_file}: {exc}") from exc
    if (tls_cert is None) != (tls_key is None):
        raise click.ClickException("--tls-cert and --tls-key go together")
    settings = CacheNodeSettings(
        upstream=upstream.rstrip("/"),
        data_dir=data_dir,
        max_bytes=max_bytes,
        ttl_seconds=ttl_seconds,
        upstream_ca=upstream_ca,
    )
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("Dockyard cache for %s on %s (blobs in %s)", settings.upstream, listen, data_dir)
    tls: dict[str, Any] = {}
    if tls_cert is not None:
        tls = {"ssl_cert": tls_cert, "ssl_key": tls_key, "ssl_protocol_min": SSLProtocols.tls12}
    # One worker process: concurrent misses of one blob share one upstream fetch inside it.
    server = Server(
        "dockyard.cache.node:create_cache_app",
        address=host.strip("[]"),
        port=int(port),
        interface=Interfaces.ASGI,
        workers=1,
        http=HTTPModes.http1 if not tls else HTTPModes.auto,
        log_level=LogLevels.info,
        **tls,
    )
    server.serve(target_loader=lambda: _cache_app(settings), wrap_loader=False)


@cache.command("status")
@click.option("--url", help="A cache node's URL: show its own counters instead of the registry's list.")
@click.option(
    "--ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CA certificate to trust for --url over HTTPS.",
)
@registry_options
def status(
    url: str | None,
    ca: Path | None,
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Show each registered cache's health and counters (hits, misses, bytes served and fetched), or, with
    --url, one cache node's own answer to /_ping."""
    if url is not None:
        try:
            trust = ssl.create_default_context(cafile=str(ca)) if ca else True
            answer = httpx.get(f"{url.rstrip('/')}/_ping", verify=trust, timeout=10)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"{url} did not answer: {exc}") from exc
        click.echo(json.dumps(answer.json(), indent=2))
        return
    with local_services(config_file, data_dir, database_url) as services:
        caches = services.caches.check_all()
    for item in caches:
        click.echo(_describe(item))


def _describe(item: Cache) -> str:
    state = "up" if item.healthy else f"DOWN ({item.last_error})"
    counters = ", ".join(f"{key} {value}" for key, value in sorted(item.stats.items()))
    return f"{item.name}\t{item.url}\t{state}\t{counters}"


@cache.command("add")
@registry_options
@click.option(
    "--ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CA certificate of the cache's HTTPS, if not publicly trusted.",
)
@click.argument("name")
@click.argument("url")
def add(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    ca: Path | None,
    name: str,
    url: str,
) -> None:
    """Register the cache NAME at URL on this registry; users can then choose it in their profile."""
    with local_services(config_file, data_dir, database_url) as services:
        services.caches.add(None, name, url, ca.read_text() if ca else None)
        checked = {c.name: c for c in services.caches.check_all()}[name]
    click.echo(_describe(checked))


@cache.command("list")
@registry_options
def list_caches(config_file: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """List the caches registered on this registry, as last checked."""
    with local_services(config_file, data_dir, database_url) as services:
        for item in services.caches.all():
            click.echo(_describe(item))


@cache.command("remove")
@registry_options
@click.argument("name")
def remove(config_file: Path | None, data_dir: Path | None, database_url: str | None, name: str) -> None:
    """Forget the cache NAME; its users are served by the registry itself again."""
    with local_services(config_file, data_dir, database_url) as services:
        services.caches.remove(None, name)
    click.echo(f"removed {name}")
