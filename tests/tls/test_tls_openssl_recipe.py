"""Certificates made with plain openssl (the recipe in docs/tls.md) pass the same checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from tls_helpers import RunCli, openssl, settings_for

from dockyard.config import ConfigError
from dockyard.tls.serving import ca_pem, resolve_tls

SERVER_EXT = """\
subjectAltName = DNS:registry.example.test, DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
"""

INTERMEDIATE_EXT = """\
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
"""


def _ca(directory: Path, name: str, key_spec: str) -> None:
    openssl(
        "req", "-x509", "-newkey", key_spec, "-nodes", "-keyout", directory / f"{name}.key",
        "-out", directory / f"{name}.crt", "-days", "1024", "-subj", f"/CN=Example {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _signed(directory: Path, name: str, issuer: str, key_spec: str, ext: str, subject: str) -> None:
    (directory / f"{name}.ext").write_text(ext)
    openssl(
        "req", "-newkey", key_spec, "-nodes", "-keyout", directory / f"{name}.key",
        "-out", directory / f"{name}.csr", "-subj", subject,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", directory / f"{name}.csr", "-CA", directory / f"{issuer}.crt",
        "-CAkey", directory / f"{issuer}.key", "-CAcreateserial", "-days", "365",
        "-extfile", directory / f"{name}.ext", "-out", directory / f"{name}.crt",
    )  # fmt: skip


@pytest.fixture(params=["rsa:3072", "ec", "ed25519"])
def recipe(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """ca.crt, ca.key, server.crt, server.key made by openssl, as docs/tls.md shows (RSA there)."""
    directory = tmp_path / "tls"
    directory.mkdir()
    spec = str(request.param)
    if spec == "ec":
        openssl("ecparam", "-name", "prime256v1", "-out", tmp_path / "p256.pem")
        spec = f"ec:{tmp_path / 'p256.pem'}"
    _ca(directory, "ca", spec)
    _signed(directory, "server", "ca", spec, SERVER_EXT, "/CN=registry.example.test")
    return directory


def test_openssl_recipe_passes_the_checks(recipe: Path) -> None:
    settings = settings_for(
        recipe.parent / "data",
        tls_cert=recipe / "server.crt",
        tls_key=recipe / "server.key",
        tls_ca=recipe / "ca.crt",
        external_url="https://registry.example.test:5000",
    )
    files = resolve_tls(settings)
    assert files is not None
    assert files.warnings == []
    assert ca_pem(settings) == (recipe / "ca.crt").read_bytes()


def test_openssl_recipe_in_the_data_dir_needs_no_flags(recipe: Path) -> None:
    files = resolve_tls(settings_for(recipe.parent))
    assert files is not None
    assert (files.cert, files.key, files.ca) == (
        recipe / "server.crt",
        recipe / "server.key",
        recipe / "ca.crt",
    )


def test_openssl_recipe_names_are_checked(recipe: Path) -> None:
    settings = settings_for(recipe.parent, external_url="https://elsewhere.example.test")
    with pytest.raises(ConfigError, match=r"not for elsewhere\.example\.test"):
        resolve_tls(settings)


def test_show_and_renew_work_on_openssl_files(run_cli: RunCli, recipe: Path) -> None:
    fingerprint = openssl("x509", "-in", recipe / "ca.crt", "-noout", "-fingerprint", "-sha256").stdout
    shown = run_cli("certs", "show", "--out", recipe)
    assert shown.exit_code == 0, shown.output
    assert fingerprint.strip().split("=", 1)[1] in shown.output
    assert "registry.example.test, localhost, 127.0.0.1" in shown.output

    renewed = run_cli("certs", "renew", "--out", recipe)
    assert renewed.exit_code == 0, renewed.output
    verify = openssl("verify", "-CAfile", recipe / "ca.crt", recipe / "server.crt", check=False)
    assert verify.returncode == 0, verify.stderr
    assert resolve_tls(settings_for(recipe.parent)) is not None


def test_chain_with_an_intermediate(tmp_path: Path) -> None:
    # An enterprise layout: root CA -> intermediate -> server; server.crt carries the intermediate.
    _ca(tmp_path, "root", "rsa:2048")
    _signed(tmp_path, "intermediate", "root", "rsa:2048", INTERMEDIATE_EXT, "/CN=Example intermediate")
    _signed(tmp_path, "server", "intermediate", "rsa:2048", SERVER_EXT, "/CN=registry.example.test")
    chain = tmp_path / "chain.crt"
    chain.write_bytes((tmp_path / "server.crt").read_bytes() + (tmp_path / "intermediate.crt").read_bytes())
    verify = openssl(
        "verify", "-CAfile", tmp_path / "root.crt", "-untrusted", tmp_path / "intermediate.crt",
        tmp_path / "server.crt", check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr

    settings = settings_for(
        tmp_path, tls_cert=chain, tls_key=tmp_path / "server.key", tls_ca=tmp_path / "root.crt"
    )
    files = resolve_tls(settings)
    assert files is not None and files.warnings == []

    # Without the intermediate in the file, nothing links the server certificate to the root.
    alone = settings_for(
        tmp_path,
        tls_cert=tmp_path / "server.crt",
        tls_key=tmp_path / "server.key",
        tls_ca=tmp_path / "root.crt",
    )
    with pytest.raises(ConfigError, match="was not issued by the CA"):
        resolve_tls(alone)
