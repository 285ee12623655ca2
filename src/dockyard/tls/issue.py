"""Making keys and certificates: a private CA, and server certificates it signs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.tls.names import SubjectNames
from dockyard.tls.pem import ServerKey

CA_DAYS = 1024
SERVER_DAYS = 365
# Start validity a little in the past so a client whose clock lags ours still accepts the certificate.
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A new private key and the certificate for it."""

    key: ServerKey
    certificate: x509.Certificate

    def key_pem(self) -> bytes:
        """The private key in unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def certificate_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_key() -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key: accepted by docker, podman, skopeo, containerd and every current TLS stack."""
    return ec.generate_private_key(ec.SECP256R1())


def _digest_for(key: ServerKey) -> hashes.SHA256 | None:
    # Ed25519/Ed448 hash internally and take no digest; RSA and ECDSA sign a SHA-256 digest.
    return None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def issue_ca(common_name: str, *, days: int = CA_DAYS, now: dt.datetime | None = None) -> Issued:
    """A self-signed CA that may sign server certificates but no further CAs."""
    key = new_key()
    start = (now or _now()) - CLOCK_SKEW
    name = _subject(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CLOCK_SKEW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, certificate)


def issue_server(
    ca: Issued,
    names: SubjectNames,
    *,
    days: int = SERVER_DAYS,
    now: dt.datetime | None = None,
) -> Issued:
    """A new key and a server certificate for `names`, signed by `ca`.

    The certificate never outlives the CA: clients would reject it once the CA expires anyway.
    """
    if not names.dns and not names.ips:
        raise ValueError("a server certificate needs at least one name")
    key = new_key()
    start = (now or _now()) - CLOCK_SKEW
    end = min(start + CLOCK_SKEW + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    common_name = names.dns[0] if names.dns else str(names.ips[0])
    ca_public = ca.key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(names.as_extension(), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # Meaningless for ECDSA but asked for by some RSA-era client checks; harmless.
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public),
            critical=False,
        )
        .sign(ca.key, _digest_for(ca.key))
    )
    return Issued(key, certificate)
