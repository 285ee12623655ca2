"""`dockyard certs`: make, show and renew the TLS certificates the registry serves with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dockyard.cli.options import settings_from
from dockyard.config import ConfigError
from dockyard.tls.authority import init_directory, issue_for_another_server, renew_directory
from dockyard.tls.inspect import fingerprint, summarize
from dockyard.tls.issue import CA_DAYS, SERVER_DAYS
from dockyard.tls.layout import TlsLayout
from dockyard.tls.names import SubjectNames
from dockyard.tls.pem import read_certificates

F = TypeVar("F", bound=Callable[..., Any])


def _location_options(what: str) -> Callable[[F], F]:
    """--config, --data-dir and --out, their help saying what this command does with the files (`what`,
    e.g. "the new files are written to")."""

    def decorate(func: F) -> F:
        func = click.option(
            "--out",
            "--dir",
            "out",
            type=click.Path(file_okay=False, path_type=Path),
            help=f"Directory instead of DATA_DIR/tls: {what} it.",
        )(func)
        func = click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="DOCKYARD_DATA_DIR",
            help=f"Dockyard's data directory; {what} its tls/ subdirectory.",
        )(func)
        return click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            envvar="DOCKYARD_CONFIG",
            help="TOML configuration file naming the data directory, as for `dockyard serve` "
            "(default: ./dockyard.toml, else /etc/dockyard/dockyard.toml, if present).",
        )(func)

    return decorate


def _name_options(func: F) -> F:
    func = click.option(
        "--ip",
        "ips",
        multiple=True,
        metavar="ADDR",
        help="An IP address clients use to reach the registry (repeatable). 127.0.0.1 is always included.",
    )(func)
    return click.option(
        "--host",
        "hosts",
        multiple=True,
        metavar="NAME",
        help="A DNS name clients use to reach the registry (repeatable; *.example.com allowed). "
        "localhost is always included.",
    )(func)


def _layout(config_file: Path | None, data_dir: Path | None, out: Path | None) -> TlsLayout:
    if out is not None:
        return TlsLayout(out)
    return TlsLayout.in_data_dir(settings_from(config_file, data_dir=data_dir).data_dir)


def _names(hosts: tuple[str, ...], ips: tuple[str, ...]) -> SubjectNames:
    try:
        return SubjectNames.build(list(hosts), list(ips))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _serve_hint(layout: TlsLayout, out: Path | None) -> str:
    if out is None:
        return "`dockyard serve` finds these files in the data directory and serves HTTPS with no flags."
    return (
        f"Serve with: dockyard serve --tls-cert {layout.server_cert} --tls-key {layout.server_key} "
        f"--tls-ca {layout.ca_cert}"
    )


@click.group()
def certs() -> None:
    """Make, show and renew TLS certificates for the registry.

    `dockyard certs init` creates a private certificate authority (CA) and a server certificate
    signed by it in DATA_DIR/tls/, where `dockyard serve` finds them. Clients then trust the CA
    once (see docs/tls.md); `dockyard certs renew` replaces the server certificate later without
    clients having to do anything. Certificates from another CA work too: give them to
    `dockyard serve` with --tls-cert, --tls-key and --tls-ca.
    """


@certs.command()
@_name_options
@_location_options("the CA and server files are written to")
@click.option("--force", is_flag=True, help="Replace existing files, including the CA.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=SERVER_DAYS,
    show_default=True,
    help="Validity of the server certificate.",
)
@click.option(
    "--ca-days", type=click.IntRange(min=1), default=CA_DAYS, show_default=True, help="Validity of the CA."
)
def init(
    hosts: tuple[str, ...],
    ips: tuple[str, ...],
    config_file: Path | None,
    data_dir: Path | None,
    out: Path | None,
    force: bool,
    days: int,
    ca_days: int,
) -> None:
    """Create a CA and a server certificate signed by it.

    Writes ca.crt, ca.key, server.crt and server.key (private keys mode 0600). Give every name
    and address clients will use, e.g.

        dockyard certs init --host registry.example.com --ip 192.0.2.10

    Existing files are never replaced unless --force is given.
    """
    names = _names(hosts, ips)
    layout = _layout(config_file, data_dir, out)
    try:
        ca, server = init_directory(layout, names, force=force, ca_days=ca_days, days=days)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created in {layout.directory}:")
    click.echo("  ca.crt      the CA certificate: clients trust this one")
    click.echo("  ca.key      the CA's private key (mode 0600): keep it secret, it can issue certificates")
    click.echo(f"  server.crt  the server certificate for {', '.join(names.describe())}")
    click.echo("  server.key  the server's private key (mode 0600)")
    click.echo(f"CA SHA-256 fingerprint: {fingerprint(ca.certificate)}")
    click.echo(f"Server certificate valid until {server.certificate.not_valid_after_utc:%Y-%m-%d} UTC.")
    click.echo(_serve_hint(layout, out))
    click.echo("To make docker, podman, containerd or the OS trust the CA, see docs/tls.md.")


@certs.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@_location_options("the certificates shown are read from")
def show(files: tuple[Path, ...], config_file: Path | None, data_dir: Path | None, out: Path | None) -> None:
    """Print each certificate's subject, names, validity and SHA-256 fingerprint.

    With no FILES, shows ca.crt and server.crt of the TLS directory. Any PEM certificate file
    can be given, including ones made elsewhere. Compare the CA fingerprint with the one a
    client downloaded from https://HOST:PORT/ca before trusting it.
    """
    layout = _layout(config_file, data_dir, out)
    paths = list(files) or [p for p in (layout.ca_cert, layout.server_cert) if p.exists()]
    if not paths:
        raise click.ClickException(
            f"no certificates in {layout.directory}; create them with `dockyard certs init`"
        )
    blocks: list[list[str]] = []
    try:
        for path in paths:
            for certificate in read_certificates(path, "certificate"):
                blocks.append([f"{path}:", *(f"  {line}" for line in summarize(certificate).lines())])
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("\n\n".join("\n".join(block) for block in blocks))


@certs.command()
@_name_options
@_location_options("the server key and certificate are renewed in")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=SERVER_DAYS,
    show_default=True,
    help="Validity of the new server certificate (never beyond the CA's).",
)
def renew(
    hosts: tuple[str, ...],
    ips: tuple[str, ...],
    config_file: Path | None,
    data_dir: Path | None,
    out: Path | None,
    days: int,
) -> None:
    """Replace the server key and certificate, signed by the same CA.

    Clients that trust the CA accept the new certificate without any change. The names of the
    current certificate are kept unless --host or --ip is given, in which case exactly those
    (plus localhost and 127.0.0.1) are used. Restart `dockyard serve` to use the new certificate.
    """
    layout = _layout(config_file, data_dir, out)
    names = _names(hosts, ips) if hosts or ips else None
    try:
        ca, server = renew_directory(layout, names, days=days)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = summarize(server.certificate)
    click.echo(f"Renewed {layout.server_cert} and {layout.server_key}")
    click.echo(f"  names:      {', '.join(summary.names)}")
    click.echo(f"  not after:  {summary.not_after:%Y-%m-%d} UTC")
    click.echo(f"  issued by:  {summary.issuer} (SHA-256 {fingerprint(ca.certificate)})")
    click.echo("Restart `dockyard serve` to use it.")


@certs.command("issue")
@_name_options
@_location_options("the CA that signs is read from")
@click.option(
    "--to",
    "target",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the new server.key, server.crt and a copy of ca.crt (created mode 0700).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=SERVER_DAYS,
    show_default=True,
    help="Validity of the certificate (never beyond the CA's).",
)
def issue(
    hosts: tuple[str, ...],
    ips: tuple[str, ...],
    config_file: Path | None,
    data_dir: Path | None,
    out: Path | None,
    target: Path,
    days: int,
) -> None:
    """Sign a certificate for another server, such as a content cache, with the registry's CA.

    Clients that already trust the registry's CA then trust that server too, so a pull redirected to a
    cache needs no new trust anywhere, e.g.

        dockyard certs issue --host cache-asia.example.com --to ./asia-tls

    then `dockyard cache serve --tls-cert ./asia-tls/server.crt --tls-key ./asia-tls/server.key`.
    """
    names = _names(hosts, ips)
    layout = _layout(config_file, data_dir, out)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        server = issue_for_another_server(layout, TlsLayout(target), names, days=days)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Issued {target / 'server.crt'} and {target / 'server.key'} (mode 0600)")
    click.echo(f"  names:      {', '.join(names.describe())}")
    click.echo(f"  not after:  {server.certificate.not_valid_after_utc:%Y-%m-%d} UTC")
