"""What `dockyard serve` needs for HTTPS: which files to use, checked before the server starts."""

from __future__ import annotations

import datetime as dt
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from dockyard.config import ConfigError, Settings
from dockyard.tls.layout import TlsLayout
from dockyard.tls.names import SubjectNames
from dockyard.tls.pem import public_key_der, read_certificates, read_private_key

EXPIRY_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """Checked TLS files for the server, and anything worth telling the operator at start."""

    cert: Path
    key: Path
    ca: Path | None
    warnings: list[str] = field(default_factory=list)


def resolve_tls(settings: Settings, *, now: dt.datetime | None = None) -> TlsFiles | None:
    """The TLS files to serve with, or None to serve plain HTTP.

    Uses `tls_cert`/`tls_key` (and `tls_ca`) when set, otherwise the files `dockyard certs init`
    made in `<data_dir>/tls/` if they exist. Raises ConfigError when a file is missing or
    unreadable, the key does not match the certificate, a certificate has expired, the CA did
    not issue the certificate, or the certificate's names do not cover `external_url`'s host.
    """
    now = now or dt.datetime.now(dt.UTC)
    chosen = _choose_files(settings)
    if chosen is None:
        return None
    cert_path, key_path, ca_path = chosen
    warnings: list[str] = []

    chain = read_certificates(cert_path, "TLS certificate")
    leaf = chain[0]
    key = read_private_key(key_path, "TLS key")
    if public_key_der(key) != public_key_der(leaf):
        raise ConfigError(
            f"TLS key {key_path} does not belong to certificate {cert_path}; "
            "give the key that was used to request this certificate, or issue a new pair "
            "(`dockyard certs renew` for certificates made by `dockyard certs init`)"
        )
    warnings += _key_mode_warnings(key_path)
    warnings += _validity(leaf, cert_path, "TLS certificate", now)

    if ca_path is not None:
        authorities = read_certificates(ca_path, "CA certificate")
        for authority in authorities:
            warnings += _validity(authority, ca_path, "CA certificate", now)
        if not _issued_by(chain, authorities):
            raise ConfigError(
                f"TLS certificate {cert_path} was not issued by the CA in {ca_path}; "
                "clients trusting that CA would reject it. Give the CA that signed it with --tls-ca"
            )

    names = SubjectNames.of(leaf)
    if not names:
        warnings.append(
            f"TLS certificate {cert_path} has no subjectAltName; docker, podman and other Go clients "
            "ignore the common name and will reject it"
        )
    if settings.external_url is not None:
        host = urlsplit(settings.external_url).hostname
        if host and not names.covers(host):
            listed = ", ".join(names.describe()) or "no names"
            raise ConfigError(
                f"TLS certificate {cert_path} is for {listed}, not for {host} (the host of external_url "
                f"{settings.external_url}); issue one that includes it, e.g. "
                f"`dockyard certs renew --host {host}`, or correct external_url"
            )
    return TlsFiles(cert=cert_path, key=key_path, ca=ca_path, warnings=warnings)


def check_external_url(settings: Settings, serves_tls: bool) -> None:
    """Refuse an `external_url` whose scheme is not the listener's: clients would be sent to the wrong one.

    The one legitimate mismatch, a reverse proxy in front that terminates TLS (clients use https, the
    listener speaks HTTP), is allowed when the operator says so with `behind_tls_proxy`.
    """
    if settings.external_url is None:
        return
    scheme = urlsplit(settings.external_url).scheme
    if serves_tls and scheme != "https":
        raise ConfigError(
            f"external_url {settings.external_url} is http://, but this server serves HTTPS (TLS files are "
            "configured or found in the data directory); clients would be sent to plain HTTP. "
            "Use https:// in external_url"
        )
    if not serves_tls and scheme != "http" and not settings.behind_tls_proxy:
        raise ConfigError(
            f"external_url {settings.external_url} is https://, but this server serves plain HTTP "
            "(no TLS certificate is configured); clients would try TLS and fail. Give --tls-cert and "
            "--tls-key (or run `dockyard certs init`), use http:// in external_url, or, when a reverse "
            "proxy in front terminates TLS, set behind_tls_proxy = true"
        )


def ca_pem(settings: Settings) -> bytes | None:
    """The CA certificate(s) to publish at GET /ca, in PEM, or None when there is none to publish.

    Comes from `tls_ca`, else from `<data_dir>/tls/ca.crt` when the server uses the data
    directory's certificates (a CA there says nothing about a certificate given with tls_cert).
    Only certificates are returned, whatever else the file holds.
    """
    path = settings.tls_ca
    if path is None and settings.tls_cert is None:
        default = TlsLayout.in_data_dir(settings.data_dir).ca_cert
        path = default if _exists(default) else None
    if path is None:
        return None
    certificates = read_certificates(path, "CA certificate")
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _choose_files(settings: Settings) -> tuple[Path, Path, Path | None] | None:
    if settings.tls_cert is not None and settings.tls_key is not None:
        return settings.tls_cert, settings.tls_key, settings.tls_ca
    if settings.tls_cert is not None:
        raise ConfigError(
            "tls_cert (--tls-cert) was given without tls_key (--tls-key); HTTPS needs both the "
            "certificate and its private key"
        )
    if settings.tls_key is not None:
        raise ConfigError(
            "tls_key (--tls-key) was given without tls_cert (--tls-cert); HTTPS needs both the "
            "certificate and its private key"
        )

    layout = TlsLayout.in_data_dir(settings.data_dir)
    has_cert, has_key = _exists(layout.server_cert), _exists(layout.server_key)
    if not has_cert and not has_key:
        if settings.tls_ca is not None:
            raise ConfigError(
                "tls_ca (--tls-ca) was given without a certificate to serve; add --tls-cert and --tls-key, "
                f"or run `dockyard certs init` to create them in {layout.directory}"
            )
        return None
    if not has_cert or not has_key:
        missing, present = (
            (layout.server_cert, layout.server_key) if has_key else (layout.server_key, layout.server_cert)
        )
        raise ConfigError(
            f"{present} exists but {missing} does not; restore it, or issue a new pair with "
            "`dockyard certs renew` (or `dockyard certs init --force` for a new CA too)"
        )
    ca = settings.tls_ca
    if ca is None and _exists(layout.ca_cert):
        ca = layout.ca_cert
    return layout.server_cert, layout.server_key, ca


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:
        # exists() only hides "not found"; a directory we may not search is the operator's to fix.
        raise ConfigError(
            f"cannot look for {path}: {exc.strerror}; check the data directory's permissions"
        ) from exc


def _validity(certificate: x509.Certificate, path: Path, what: str, now: dt.datetime) -> list[str]:
    subject = certificate.subject.rfc4514_string()
    not_after = certificate.not_valid_after_utc
    if certificate.not_valid_before_utc > now:
        raise ConfigError(
            f"{what} {path} ({subject}) is not valid until "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this machine's clock"
        )
    if not_after <= now:
        raise ConfigError(
            f"{what} {path} ({subject}) expired on {not_after:%Y-%m-%d %H:%M} UTC; clients will refuse it. "
            "Issue a new one (`dockyard certs renew` for certificates made by `dockyard certs init`)"
        )
    if not_after - now <= EXPIRY_WARNING:
        days = (not_after - now).days
        return [
            f"{what} {path} ({subject}) expires in {days} days, on {not_after:%Y-%m-%d} UTC; "
            "renew it soon (`dockyard certs renew` for certificates made by `dockyard certs init`)"
        ]
    return []


def _key_mode_warnings(path: Path) -> list[str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"TLS key {path} can be read by other users (mode {stat.S_IMODE(mode):04o}); chmod 600 it"]
    return []


def _issued_by(chain: list[x509.Certificate], authorities: list[x509.Certificate]) -> bool:
    # The certificate file may carry intermediates; the chain is good if any of its members is the
    # CA itself or was signed by it.
    for member in chain:
        for authority in authorities:
            if member == authority:
                return True
            try:
                member.verify_directly_issued_by(authority)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
    return False
