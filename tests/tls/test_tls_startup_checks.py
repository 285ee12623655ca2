"""`resolve_tls`: what `dockyard serve` checks before it starts serving HTTPS."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tls_helpers import RunCli, openssl, settings_for

from dockyard.config import ConfigError
from dockyard.tls.authority import init_directory
from dockyard.tls.layout import TlsLayout
from dockyard.tls.names import SubjectNames
from dockyard.tls.serving import TlsFiles, ca_pem, resolve_tls

NAMES = SubjectNames.build(["registry.example.test", "*.apps.example.test"], ["192.0.2.10"])


def _make(directory: Path, *, days: int = 365, now: dt.datetime | None = None) -> TlsLayout:
    layout = TlsLayout(directory)
    init_directory(layout, NAMES, days=days, now=now)
    return layout


def test_nothing_configured_means_plain_http(data_dir: Path) -> None:
    assert resolve_tls(settings_for(data_dir)) is None
    assert ca_pem(settings_for(data_dir)) is None


def test_data_dir_certificates_need_no_flags(initialised: TlsLayout, data_dir: Path) -> None:
    files = resolve_tls(settings_for(data_dir))
    assert files == TlsFiles(
        cert=initialised.server_cert, key=initialised.server_key, ca=initialised.ca_cert, warnings=[]
    )
    assert ca_pem(settings_for(data_dir)) == initialised.ca_cert.read_bytes()


def test_explicit_files(tmp_path: Path, data_dir: Path) -> None:
    layout = _make(tmp_path / "elsewhere")
    settings = settings_for(
        data_dir, tls_cert=layout.server_cert, tls_key=layout.server_key, tls_ca=layout.ca_cert
    )
    files = resolve_tls(settings)
    assert files is not None
    assert (files.cert, files.key, files.ca, files.warnings) == (
        layout.server_cert,
        layout.server_key,
        layout.ca_cert,
        [],
    )
    assert ca_pem(settings) == layout.ca_cert.read_bytes()


def test_explicit_cert_without_ca_publishes_no_unrelated_ca(
    tmp_path: Path, initialised: TlsLayout, data_dir: Path
) -> None:
    other = _make(tmp_path / "other")
    settings = settings_for(data_dir, tls_cert=other.server_cert, tls_key=other.server_key)
    files = resolve_tls(settings)
    assert files is not None and files.ca is None
    assert ca_pem(settings) is None


@pytest.mark.parametrize("given", ["tls_cert", "tls_key"])
def test_only_one_of_cert_and_key_is_an_error(initialised: TlsLayout, data_dir: Path, given: str) -> None:
    path = initialised.server_cert if given == "tls_cert" else initialised.server_key
    with pytest.raises(ConfigError, match=rf"^{given} \(--{given.replace('_', '-')}\) was given without"):
        resolve_tls(settings_for(data_dir, **{given: path}))


def test_ca_alone_is_an_error(initialised: TlsLayout, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_ca .* was given without a certificate to serve"):
        resolve_tls(settings_for(tmp_path / "empty", tls_ca=initialised.ca_cert))


@pytest.mark.parametrize("missing", ["server.crt", "server.key"])
def test_half_a_pair_in_the_data_dir_is_an_error(
    initialised: TlsLayout, data_dir: Path, missing: str
) -> None:
    (initialised.directory / missing).unlink()
    with pytest.raises(ConfigError, match=rf"exists but .*/{missing} does not"):
        resolve_tls(settings_for(data_dir))


@pytest.mark.parametrize("which", ["tls_cert", "tls_key"])
def test_missing_file(initialised: TlsLayout, data_dir: Path, tmp_path: Path, which: str) -> None:
    files = {"tls_cert": initialised.server_cert, "tls_key": initialised.server_key}
    files[which] = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'nope.pem'} does not exist"):
        resolve_tls(settings_for(data_dir, **files))


@pytest.mark.parametrize("which", ["tls_cert", "tls_key"])
def test_file_that_is_a_directory(initialised: TlsLayout, data_dir: Path, tmp_path: Path, which: str) -> None:
    files = {"tls_cert": initialised.server_cert, "tls_key": initialised.server_key, which: tmp_path}
    with pytest.raises(ConfigError, match=rf"{tmp_path} is a directory"):
        resolve_tls(settings_for(data_dir, **files))


@pytest.mark.parametrize(
    ("which", "expected"), [("tls_cert", "PEM certificate"), ("tls_key", "PEM private key")]
)
def test_file_that_is_not_pem(
    initialised: TlsLayout, data_dir: Path, tmp_path: Path, which: str, expected: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    files = {"tls_cert": initialised.server_cert, "tls_key": initialised.server_key, which: junk}
    with pytest.raises(ConfigError, match=rf"{junk} holds no readable {expected}"):
        resolve_tls(settings_for(data_dir, **files))


def _resolve_as_nobody(build: Callable[[Path], None]) -> str:
    """Run resolve_tls as an unprivileged user on a data directory `build` fills; its error message.

    Root reads any file, so permission errors can only be seen as another user. pytest's own
    temporary directory is private to root; this one must be reachable by that user.
    """
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to test as an unprivileged user")
    shared = Path(tempfile.mkdtemp(prefix="dockyard-tls-"))
    try:
        shared.chmod(0o755)
        build(shared)
        script = (
            "from dockyard.config import load_settings, ConfigError\n"
            "from dockyard.tls.serving import resolve_tls\n"
            f"try:\n    resolve_tls(load_settings(data_dir={str(shared)!r}))\n"
            "except ConfigError as exc:\n    print(exc)\n"
        )
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script],
            capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
    finally:
        shutil.rmtree(shared)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _key_unreadable(data_dir: Path) -> None:
    _make(data_dir / "tls").directory.chmod(0o755)


def _tls_dir_unsearchable(data_dir: Path) -> None:
    _make(data_dir / "tls").directory.chmod(0o700)


def test_unreadable_key(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        message = _resolve_as_nobody(_key_unreadable)
    else:
        _make(tmp_path / "tls").server_key.chmod(0)
        with pytest.raises(ConfigError) as caught:
            resolve_tls(settings_for(tmp_path))
        message = str(caught.value)
    assert re.match(r"TLS key /\S+/tls/server\.key is not readable by this user; fix its owner", message)


def test_unsearchable_tls_directory(tmp_path: Path) -> None:
    # A TLS directory the server cannot look into must be reported, not crash with a traceback.
    if os.geteuid() == 0:
        message = _resolve_as_nobody(_tls_dir_unsearchable)
    else:
        _tls_dir_unsearchable(tmp_path)
        (tmp_path / "tls").chmod(0)
        try:
            with pytest.raises(ConfigError) as caught:
                resolve_tls(settings_for(tmp_path))
        finally:
            (tmp_path / "tls").chmod(0o755)
        message = str(caught.value)
    assert message.startswith("cannot look for ")
    assert "/tls/server.crt: Permission denied; check the data directory's permissions" in message


def test_encrypted_key(initialised: TlsLayout, data_dir: Path, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    openssl("pkey", "-in", initialised.server_key, "-aes256", "-passout", "pass:secret", "-out", encrypted)
    with pytest.raises(ConfigError, match="is encrypted with a passphrase"):
        resolve_tls(settings_for(data_dir, tls_cert=initialised.server_cert, tls_key=encrypted))


def test_key_not_matching_certificate(initialised: TlsLayout, data_dir: Path, tmp_path: Path) -> None:
    other = _make(tmp_path / "other")
    settings = settings_for(data_dir, tls_cert=initialised.server_cert, tls_key=other.server_key)
    with pytest.raises(ConfigError, match=rf"TLS key {other.server_key} does not belong to certificate"):
        resolve_tls(settings)


def test_certificate_not_issued_by_the_ca(initialised: TlsLayout, data_dir: Path, tmp_path: Path) -> None:
    other = _make(tmp_path / "other")
    settings = settings_for(
        data_dir, tls_cert=initialised.server_cert, tls_key=initialised.server_key, tls_ca=other.ca_cert
    )
    with pytest.raises(ConfigError, match=rf"was not issued by the CA in {other.ca_cert}"):
        resolve_tls(settings)


def test_expired_certificate(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    _make(tmp_path / "tls", days=30, now=now - dt.timedelta(days=31))
    with pytest.raises(ConfigError, match=r"TLS certificate .*server.crt .* expired on .*renew"):
        resolve_tls(settings_for(tmp_path))


def test_expired_ca(initialised: TlsLayout, data_dir: Path, tmp_path: Path) -> None:
    # The same CA (name and key) re-signed with a validity that has ended: the server certificate
    # is still valid and signed by it, but clients would refuse the chain.
    ca = x509.load_pem_x509_certificate(initialised.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(initialised.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=20))
        .not_valid_after(now - dt.timedelta(days=1))
    )
    for extension in ca.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    expired = tmp_path / "expired-ca.crt"
    expired.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match=rf"^CA certificate {expired} \(.*\) expired on "):
        resolve_tls(settings_for(data_dir, tls_ca=expired))


def test_not_yet_valid_certificate(tmp_path: Path) -> None:
    _make(tmp_path / "tls", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    with pytest.raises(ConfigError, match=r"is not valid until .* check this machine's clock"):
        resolve_tls(settings_for(tmp_path))


def test_warning_within_30_days_of_expiry(tmp_path: Path) -> None:
    _make(tmp_path / "tls", days=20)
    files = resolve_tls(settings_for(tmp_path))
    assert files is not None
    assert len(files.warnings) == 1
    assert "expires in 19 days" in files.warnings[0]
    assert "server.crt" in files.warnings[0]


def test_no_warning_31_days_before_expiry(tmp_path: Path) -> None:
    _make(tmp_path / "tls", days=32)
    files = resolve_tls(settings_for(tmp_path))
    assert files is not None and files.warnings == []


def test_warning_for_a_key_others_can_read(initialised: TlsLayout, data_dir: Path) -> None:
    initialised.server_key.chmod(0o644)
    files = resolve_tls(settings_for(data_dir))
    assert files is not None
    assert files.warnings == [
        f"TLS key {initialised.server_key} can be read by other users (mode 0644); chmod 600 it"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://registry.example.test",
        "https://REGISTRY.example.test:5000/",
        "https://x.apps.example.test:443",
        "https://192.0.2.10:5000",
        "http://localhost:5000",
        "https://127.0.0.1",
    ],
)
def test_external_url_covered(tmp_path: Path, url: str) -> None:
    _make(tmp_path / "tls")
    assert resolve_tls(settings_for(tmp_path, external_url=url)) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://other.example.test",
        "https://apps.example.test",
        "https://a.b.apps.example.test",
        "https://192.0.2.11:5000",
        "https://registry.example.test.evil.test",
    ],
)
def test_external_url_not_covered(tmp_path: Path, url: str) -> None:
    _make(tmp_path / "tls")
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    with pytest.raises(ConfigError, match=rf"is for .* not for {host} \(the host of external_url"):
        resolve_tls(settings_for(tmp_path, external_url=url))


def test_ca_pem_returns_only_certificates(initialised: TlsLayout, data_dir: Path, tmp_path: Path) -> None:
    careless = tmp_path / "bundle.pem"
    careless.write_bytes(initialised.ca_cert.read_bytes() + initialised.ca_key.read_bytes())
    published = ca_pem(settings_for(data_dir, tls_ca=careless))
    assert published == initialised.ca_cert.read_bytes()
    assert published is not None and b"PRIVATE KEY" not in published


def test_ca_pem_reports_a_broken_ca_file(initialised: TlsLayout, data_dir: Path) -> None:
    initialised.ca_cert.write_text("garbage")
    with pytest.raises(ConfigError, match="holds no readable PEM certificate"):
        ca_pem(settings_for(data_dir))


def test_cli_made_and_checked_match(run_cli: RunCli, data_dir: Path) -> None:
    result = run_cli("certs", "init", "--data-dir", data_dir, "--host", "registry.example.test")
    assert result.exit_code == 0
    files = resolve_tls(settings_for(data_dir, external_url="https://registry.example.test:5000"))
    assert files is not None and files.warnings == []
