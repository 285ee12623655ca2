"""`dockyard certs show` and `dockyard certs renew`."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from tls_helpers import RunCli, openssl

from dockyard.tls.layout import TlsLayout


def _openssl_fingerprint(path: Path) -> str:
    out = openssl("x509", "-in", path, "-noout", "-fingerprint", "-sha256").stdout.strip()
    return out.split("=", 1)[1]


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(path: Path) -> tuple[set[str], set[str]]:
    san = _load(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def test_show_prints_subject_names_validity_and_fingerprint(
    run_cli: RunCli, initialised: TlsLayout, data_dir: Path
) -> None:
    result = run_cli("certs", "show", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    ca_part, server_part = result.output.split("\n\n")
    assert ca_part.startswith(f"{initialised.ca_cert}:")
    assert server_part.startswith(f"{initialised.server_cert}:")
    assert f"SHA-256:     {_openssl_fingerprint(initialised.ca_cert)}" in ca_part
    assert f"SHA-256:     {_openssl_fingerprint(initialised.server_cert)}" in server_part
    assert "subject:     CN=registry.example.test,O=Dockyard" in server_part
    assert "names:       registry.example.test, localhost, 192.0.2.10, 127.0.0.1" in server_part
    assert "CA:          yes" in ca_part and "CA:          no" in server_part
    server = _load(initialised.server_cert)
    assert f"not after:   {server.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC (364 days left)" in server_part
    assert f"not before:  {server.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC" in server_part


def test_show_any_file_and_out_dir(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("certs", "init", "--out", tmp_path, "--host", "a.example.test").exit_code == 0
    by_dir = run_cli("certs", "show", "--out", tmp_path)
    assert by_dir.exit_code == 0
    assert "a.example.test" in by_dir.output
    by_file = run_cli("certs", "show", tmp_path / "ca.crt")
    assert by_file.exit_code == 0
    assert _openssl_fingerprint(tmp_path / "ca.crt") in by_file.output
    assert "server.crt" not in by_file.output


def test_show_errors_are_clear(run_cli: RunCli, tmp_path: Path) -> None:
    empty = run_cli("certs", "show", "--out", tmp_path)
    assert empty.exit_code == 1
    assert "dockyard certs init" in empty.output
    garbage = tmp_path / "junk.crt"
    garbage.write_text("hello\n")
    bad = run_cli("certs", "show", garbage)
    assert bad.exit_code == 1
    assert f"{garbage} holds no readable PEM certificate" in bad.output


def test_renew_keeps_ca_and_names_and_verifies(
    run_cli: RunCli, initialised: TlsLayout, data_dir: Path
) -> None:
    ca_before = (initialised.ca_cert.read_bytes(), initialised.ca_key.read_bytes())
    server_before = _load(initialised.server_cert)
    key_before = initialised.server_key.read_bytes()

    result = run_cli("certs", "renew", "--data-dir", data_dir, "--days", "90")
    assert result.exit_code == 0, result.output

    assert (initialised.ca_cert.read_bytes(), initialised.ca_key.read_bytes()) == ca_before
    server_after = _load(initialised.server_cert)
    assert server_after.serial_number != server_before.serial_number
    assert initialised.server_key.read_bytes() != key_before
    assert server_after.public_key() != server_before.public_key()
    assert _names(initialised.server_cert) == (
        {"registry.example.test", "localhost"},
        {"192.0.2.10", "127.0.0.1"},
    )
    assert (server_after.not_valid_after_utc - server_after.not_valid_before_utc).days == 90
    assert stat.S_IMODE(initialised.server_key.stat().st_mode) == 0o600
    verify = openssl("verify", "-CAfile", initialised.ca_cert, initialised.server_cert, check=False)
    assert verify.returncode == 0, verify.stderr
    # The new key really belongs to the new certificate.
    key_pub = openssl("pkey", "-in", initialised.server_key, "-pubout").stdout
    cert_pub = openssl("x509", "-in", initialised.server_cert, "-noout", "-pubkey").stdout
    assert key_pub == cert_pub


def test_renew_with_new_names_replaces_them(run_cli: RunCli, initialised: TlsLayout, data_dir: Path) -> None:
    result = run_cli("certs", "renew", "--data-dir", data_dir, "--host", "new.example.test", "--ip", "::1")
    assert result.exit_code == 0, result.output
    assert _names(initialised.server_cert) == ({"new.example.test", "localhost"}, {"::1", "127.0.0.1"})
    assert openssl("verify", "-CAfile", initialised.ca_cert, initialised.server_cert).returncode == 0


def test_renew_never_outlives_the_ca(run_cli: RunCli, tmp_path: Path) -> None:
    assert run_cli("certs", "init", "--out", tmp_path, "--ca-days", "30").exit_code == 0
    assert run_cli("certs", "renew", "--out", tmp_path, "--days", "365").exit_code == 0
    assert (
        _load(tmp_path / "server.crt").not_valid_after_utc <= _load(tmp_path / "ca.crt").not_valid_after_utc
    )


def test_renew_without_a_ca_is_a_clear_error(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("certs", "renew", "--out", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path / 'ca.key'} does not exist" in result.output
    assert not list(tmp_path.iterdir())


def test_renew_refuses_a_ca_key_that_is_not_the_cas(run_cli: RunCli, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli("certs", "init", "--out", first).exit_code == 0
    assert run_cli("certs", "init", "--out", second).exit_code == 0
    (first / "ca.key").write_bytes((second / "ca.key").read_bytes())
    before = (first / "server.crt").read_bytes()
    result = run_cli("certs", "renew", "--out", first)
    assert result.exit_code == 1
    assert "is not the key of" in result.output
    assert (first / "server.crt").read_bytes() == before
