"""Reading certificates and private keys from PEM files, with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from dockyard.config import ConfigError

# Key types a TLS server can use; cryptography can also load DSA/DH keys, which TLS 1.2+ cannot serve.
ServerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


def read_bytes(path: Path, what: str) -> bytes:
    """Read a whole file, turning OS errors into a ConfigError that says which file and why."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{what} {path} does not exist; check the path or run `dockyard certs init`"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} {path} is a directory, not a PEM file") from exc
    except PermissionError as exc:
        raise ConfigError(
            f"{what} {path} is not readable by this user; fix its owner or permissions"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """All certificates in a PEM file, in file order (leaf first for a chain)."""
    data = read_bytes(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(
            f"{what} {path} holds no readable PEM certificate "
            "(expected a '-----BEGIN CERTIFICATE-----' block)"
        ) from exc
    return certificates


def read_certificate(path: Path, what: str) -> x509.Certificate:
    """The first certificate in a PEM file."""
    return read_certificates(path, what)[0]


def read_private_key(path: Path, what: str) -> ServerKey:
    """An unencrypted PEM private key usable by a TLS server."""
    data = read_bytes(path, what)
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigError(
            f"{what} {path} is encrypted with a passphrase; Dockyard needs an unencrypted key "
            f"(decrypt it with `openssl pkey -in {path} -out NEW.key` and keep NEW.key mode 0600)"
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            f"{what} {path} holds no readable PEM private key "
            "(expected a '-----BEGIN ... PRIVATE KEY-----' block)"
        ) from exc
    if not isinstance(key, ServerKey):
        raise ConfigError(f"{what} {path} is a {type(key).__name__}, which TLS servers cannot use")
    return key


def public_key_der(key: ServerKey | x509.Certificate) -> bytes:
    """The SubjectPublicKeyInfo of a private key or certificate, to compare the two."""
    public = key.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
