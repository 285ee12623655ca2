"""`dockyard certs init`: the files it writes, their modes, and the certificates' contents."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from tls_helpers import RunCli, openssl

from dockyard.tls.layout import TlsLayout

FILES = ("ca.crt", "ca.key", "server.crt", "server.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_writes_four_files_with_private_keys_0600(initialised: TlsLayout) -> None:
    assert sorted(p.name for p in initialised.directory.iterdir()) == sorted(FILES)
    assert _mode(initialised.ca_key) == 0o600
    assert _mode(initialised.server_key) == 0o600
    assert _mode(initialised.ca_cert) == 0o644
    assert _mode(initialised.server_cert) == 0o644


def test_chain_verifies_with_openssl(initialised: TlsLayout) -> None:
    result = openssl("verify", "-CAfile", initialised.ca_cert, initialised.server_cert, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{initialised.server_cert}: OK"
    # And for the purpose a registry uses it for.
    result = openssl(
        "verify", "-purpose", "sslserver", "-verify_hostname", "registry.example.test",
        "-CAfile", initialised.ca_cert, initialised.server_cert, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_openssl_sees_every_server_extension(initialised: TlsLayout) -> None:
    text = openssl("x509", "-in", initialised.server_cert, "-noout", "-text").stdout
    assert re.search(r"X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n", text)
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:FALSE\n", text)
    assert re.search(
        r"X509v3 Extended Key Usage:\s*\n\s+"
        r"TLS Web Server Authentication, TLS Web Client Authentication\n",
        text,
    )
    san = re.search(r"X509v3 Subject Alternative Name:\s*\n\s+(.*)\n", text)
    assert san is not None
    assert sorted(san.group(1).split(", ")) == sorted(
        ["DNS:registry.example.test", "DNS:localhost", "IP Address:192.0.2.10", "IP Address:127.0.0.1"]
    )
    assert "ecdsa-with-SHA256" in text
    assert "NIST CURVE: P-256" in text


def test_openssl_sees_a_ca(initialised: TlsLayout) -> None:
    text = openssl("x509", "-in", initialised.ca_cert, "-noout", "-text").stdout
    assert re.search(r"X509v3 Basic Constraints: critical\s+CA:TRUE", text)
    assert re.search(r"X509v3 Key Usage: critical\s+.*Certificate Sign, CRL Sign", text)
    subject = openssl("x509", "-in", initialised.ca_cert, "-noout", "-subject").stdout
    issuer = openssl("x509", "-in", initialised.ca_cert, "-noout", "-issuer").stdout
    assert subject.removeprefix("subject=") == issuer.removeprefix("issuer=")


def test_cryptography_sees_every_server_extension(initialised: TlsLayout) -> None:
    cert = _load(initialised.server_cert)
    ca = _load(initialised.ca_cert)
    ext = cert.extensions

    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(san.value.get_values_for_type(x509.DNSName)) == {"registry.example.test", "localhost"}
    assert set(san.value.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("127.0.0.1"),
    }

    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign and not usage.value.crl_sign

    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False

    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]

    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest

    cert.verify_directly_issued_by(ca)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.subject.rfc4514_string() == "CN=registry.example.test,O=Dockyard"


def test_validity_periods(initialised: TlsLayout) -> None:
    now = dt.datetime.now(dt.UTC)
    server, ca = _load(initialised.server_cert), _load(initialised.ca_cert)
    assert server.not_valid_before_utc <= now
    assert ca.not_valid_before_utc <= now
    assert abs(server.not_valid_after_utc - (now + dt.timedelta(days=365))) < dt.timedelta(minutes=2)
    assert abs(ca.not_valid_after_utc - (now + dt.timedelta(days=1024))) < dt.timedelta(minutes=2)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0


def test_data_dir_from_config_file(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-config"}"\n')
    result = run_cli("certs", "init", "--config", config)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "from-config" / "tls").iterdir()) == sorted(FILES)


def test_data_dir_from_environment(run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_DATA_DIR", str(tmp_path / "from-env"))
    result = run_cli("certs", "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "tls" / "server.key").exists()


def test_without_names_only_localhost(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("certs", "init", "--out", tmp_path / "t")
    assert result.exit_code == 0, result.output
    san = _load(tmp_path / "t" / "server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_ip_given_as_host_becomes_an_ip_entry(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("certs", "init", "--out", tmp_path, "--host", "10.1.2.3", "--host", "*.Example.TEST")
    assert result.exit_code == 0, result.output
    san = _load(tmp_path / "server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["*.example.test", "localhost"]
    assert ipaddress.ip_address("10.1.2.3") in san.value.get_values_for_type(x509.IPAddress)


@pytest.mark.parametrize(
    ("option", "value"), [("--ip", "300.1.1.1"), ("--host", "bad host"), ("--host", "a..b"), ("--ip", "host")]
)
def test_bad_names_are_refused(run_cli: RunCli, tmp_path: Path, option: str, value: str) -> None:
    result = run_cli("certs", "init", "--out", tmp_path / "t", option, value)
    assert result.exit_code == 2
    assert repr(value) in result.output
    assert not (tmp_path / "t").exists()


def test_refuses_to_overwrite(run_cli: RunCli, initialised: TlsLayout, data_dir: Path) -> None:
    before = {name: (initialised.directory / name).read_bytes() for name in FILES}
    result = run_cli("certs", "init", "--data-dir", data_dir, "--host", "other.example.test")
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert "--force" in result.output
    assert "Traceback" not in result.output
    assert {name: (initialised.directory / name).read_bytes() for name in FILES} == before


def test_refuses_when_any_one_file_exists(run_cli: RunCli, tmp_path: Path) -> None:
    tmp_path.joinpath("server.key").write_bytes(b"precious")
    result = run_cli("certs", "init", "--out", tmp_path)
    assert result.exit_code == 1
    assert str(tmp_path / "server.key") in result.output
    assert tmp_path.joinpath("server.key").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key"]


def test_force_replaces_everything_and_restores_modes(
    run_cli: RunCli, initialised: TlsLayout, data_dir: Path
) -> None:
    before = {name: (initialised.directory / name).read_bytes() for name in FILES}
    initialised.server_key.chmod(0o644)
    result = run_cli("certs", "init", "--data-dir", data_dir, "--host", "other.example.test", "--force")
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (initialised.directory / name).read_bytes() != before[name], name
    assert _mode(initialised.server_key) == 0o600
    assert _mode(initialised.ca_key) == 0o600
    assert openssl("verify", "-CAfile", initialised.ca_cert, initialised.server_cert).returncode == 0
    text = openssl("x509", "-in", initialised.server_cert, "-noout", "-text").stdout
    assert "DNS:other.example.test" in text
    assert not [p for p in initialised.directory.iterdir() if p.name not in FILES]


def test_modes_do_not_depend_on_umask(run_cli: RunCli, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        result = run_cli("certs", "init", "--out", tmp_path)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "ca.key") == 0o600
    assert _mode(tmp_path / "server.key") == 0o600
    assert _mode(tmp_path / "server.crt") == 0o644


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_keys_are_created_0600_not_chmodded_later(tmp_path: Path) -> None:
    # Watch the real system calls: each key file must be born with mode 0600 and O_EXCL, so there
    # is no moment at which it exists with wider permissions.
    log = tmp_path / "strace.log"
    out = tmp_path / "tls"
    subprocess.run(
        ["strace", "-f", "-o", str(log), "-e", "trace=openat,open,creat,close,chmod,fchmod,fchmodat",
         str(Path(sys.executable).with_name("dockyard")), "certs", "init", "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    key_fds: set[str] = set()
    key_opens = 0
    for call in log.read_text().splitlines():
        opened = re.search(r'open(?:at)?\(.*/\.(?:ca|server)\.key\.[0-9a-f]+\.tmp", (.*)\) = (\d+)', call)
        if opened:
            flags_and_mode = opened.group(1)
            assert "O_CREAT" in flags_and_mode and "O_EXCL" in flags_and_mode, call
            assert flags_and_mode.endswith(", 0600"), call
            key_fds.add(opened.group(2))
            key_opens += 1
            continue
        fchmod = re.search(r"fchmod\((\d+), (0[0-7]+)\)", call)
        if fchmod and fchmod.group(1) in key_fds:
            assert fchmod.group(2) == "0600", call
        closed = re.search(r"close\((\d+)\)", call)
        if closed:
            key_fds.discard(closed.group(1))
        assert not re.search(r"chmod(?:at)?\(.*\.key", call), call
    assert key_opens == 2
    assert _mode(out / "ca.key") == _mode(out / "server.key") == 0o600


def test_real_command_line(tmp_path: Path) -> None:
    dockyard = Path(sys.executable).with_name("dockyard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [str(dockyard), "certs", "init", "--host", "registry.example.test", "--ip", "127.0.0.1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tls = tmp_path / "tls"
    assert "CA SHA-256 fingerprint:" in proc.stdout
    assert openssl("verify", "-CAfile", tls / "ca.crt", tls / "server.crt").returncode == 0
    again = subprocess.run(
        [str(dockyard), "certs", "init"], capture_output=True, text=True, env=env, timeout=120
    )
    assert again.returncode == 1
    assert again.stderr.startswith("Error: refusing to overwrite")
    assert "Traceback" not in again.stderr
