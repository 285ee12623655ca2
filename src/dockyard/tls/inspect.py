"""Describing certificates for `dockyard certs show`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dockyard.tls.names import SubjectNames


@dataclass(frozen=True)
class CertificateSummary:
    """What a person checks about a certificate."""

    subject: str
    issuer: str
    names: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    is_ca: bool

    def lines(self, now: dt.datetime | None = None) -> list[str]:
        """The summary as `label: value` lines."""
        now = now or dt.datetime.now(dt.UTC)
        left = (self.not_after - now).days
        state = "EXPIRED" if self.not_after <= now else f"{left} days left"
        if self.not_before > now:
            state = "NOT YET VALID"
        return [
            f"subject:     {self.subject}",
            f"issuer:      {self.issuer}",
            f"CA:          {'yes' if self.is_ca else 'no'}",
            f"names:       {', '.join(self.names) if self.names else '(none)'}",
            f"not before:  {self.not_before:%Y-%m-%d %H:%M:%S} UTC",
            f"not after:   {self.not_after:%Y-%m-%d %H:%M:%S} UTC ({state})",
            f"SHA-256:     {self.sha256}",
        ]


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated upper-case hex, as `openssl x509 -fingerprint` prints it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def summarize(certificate: x509.Certificate) -> CertificateSummary:
    """Summarize one certificate."""
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateSummary(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        names=SubjectNames.of(certificate).describe(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha256=fingerprint(certificate),
        is_ca=is_ca,
    )
