"""`certs init` and `certs renew`: create or refresh the files of a TLS directory."""

from __future__ import annotations

import datetime as dt
import secrets

from dockyard.config import ConfigError
from dockyard.tls.issue import CA_DAYS, SERVER_DAYS, Issued, issue_ca, issue_server
from dockyard.tls.layout import TlsLayout, write_file
from dockyard.tls.names import SubjectNames
from dockyard.tls.pem import public_key_der, read_certificate, read_private_key


def init_directory(
    layout: TlsLayout,
    names: SubjectNames,
    *,
    force: bool = False,
    ca_days: int = CA_DAYS,
    days: int = SERVER_DAYS,
    now: dt.datetime | None = None,
) -> tuple[Issued, Issued]:
    """Create a CA and a server certificate for `names` in `layout`; returns (ca, server).

    Refuses, before writing anything, if any of the four files exists and `force` is false.
    """
    targets = [layout.ca_key, layout.ca_cert, layout.server_key, layout.server_cert]
    existing = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if existing and not force:
        raise ConfigError(
            f"refusing to overwrite {', '.join(existing)}; use --force to replace them "
            "(clients that trust the old CA will then have to trust the new one), "
            "or `dockyard certs renew` to keep the CA and replace only the server certificate"
        )
    hostname = names.dns[0] if names.dns else "localhost"
    # A unique CA name keeps two generations apart in trust stores, which index CAs by subject.
    ca = issue_ca(f"Dockyard CA {secrets.token_hex(4)} for {hostname}", days=ca_days, now=now)
    server = issue_server(ca, names, days=days, now=now)
    write_file(layout.ca_key, ca.key_pem(), private=True, overwrite=force)
    write_file(layout.ca_cert, ca.certificate_pem(), private=False, overwrite=force)
    write_file(layout.server_key, server.key_pem(), private=True, overwrite=force)
    write_file(layout.server_cert, server.certificate_pem(), private=False, overwrite=force)
    return ca, server


def renew_directory(
    layout: TlsLayout,
    names: SubjectNames | None = None,
    *,
    days: int = SERVER_DAYS,
    now: dt.datetime | None = None,
) -> tuple[Issued, Issued]:
    """Replace the server key and certificate in `layout`, signed by the CA already there.

    Keeps the current server certificate's names when `names` is None. Returns (ca, server).
    """
    ca = load_ca(layout)
    if names is None:
        if not layout.server_cert.exists():
            raise ConfigError(
                f"{layout.server_cert} does not exist, so there are no names to keep; "
                "give them with --host/--ip"
            )
        names = SubjectNames.of(read_certificate(layout.server_cert, "server certificate"))
        if not names:
            raise ConfigError(f"{layout.server_cert} has no subjectAltName; give the names with --host/--ip")
    server = issue_server(ca, names, days=days, now=now)
    write_file(layout.server_key, server.key_pem(), private=True, overwrite=True)
    write_file(layout.server_cert, server.certificate_pem(), private=False, overwrite=True)
    return ca, server


def issue_for_another_server(
    ca_layout: TlsLayout,
    out: TlsLayout,
    names: SubjectNames,
    *,
    days: int = SERVER_DAYS,
    now: dt.datetime | None = None,
) -> Issued:
    """Sign a key and certificate for another server (a content cache, say) with the registry's CA.

    Writes server.key, server.crt and a copy of ca.crt into `out` (never the CA's key), so clients that trust
    the registry's CA trust that server too. Refuses to overwrite existing files.
    """
    ca = load_ca(ca_layout)
    targets = [out.server_key, out.server_cert, out.ca_cert]
    existing = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if existing:
        raise ConfigError(f"refusing to overwrite {', '.join(existing)}")
    server = issue_server(ca, names, days=days, now=now)
    write_file(out.server_key, server.key_pem(), private=True, overwrite=False)
    write_file(out.server_cert, server.certificate_pem(), private=False, overwrite=False)
    write_file(out.ca_cert, ca.certificate_pem(), private=False, overwrite=False)
    return server


def load_ca(layout: TlsLayout) -> Issued:
    """The CA key and certificate of a TLS directory, checked to belong together."""
    if not layout.ca_key.exists():
        raise ConfigError(
            f"{layout.ca_key} does not exist; renewing needs the CA made by `dockyard certs init` "
            "(a certificate from another CA must be renewed by that CA)"
        )
    certificate = read_certificate(layout.ca_cert, "CA certificate")
    key = read_private_key(layout.ca_key, "CA key")
    if public_key_der(key) != public_key_der(certificate):
        raise ConfigError(f"{layout.ca_key} is not the key of {layout.ca_cert}")
    return Issued(key, certificate)
