"""The [storage] settings: sections in the settings file, the deprecated flat key, S3 credentials from the
file, the environment or a secret file, and clear refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.config import ConfigError, load_settings
from dockyard.storage.factory import open_driver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.permissions import OWNER_ONLY
from dockyard.storage.s3 import S3Driver


def _from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> object:
    path = tmp_path / "dockyard.toml"
    path.write_text(f'data_dir = "data"\n{text}')
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    return load_settings()


def test_filesystem_is_the_default(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.storage.driver == "filesystem"
    assert settings.effective_storage_path == tmp_path / "storage"
    assert isinstance(open_driver(settings, OWNER_ONLY), FilesystemDriver)


def test_filesystem_section_and_deprecated_flat_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _from_file(tmp_path, monkeypatch, '[storage.filesystem]\npath = "blobs"\n')
    # Relative to the settings file, like every path in it.
    assert settings.effective_storage_path == tmp_path / "blobs"  # type: ignore[attr-defined]
    flat = _from_file(tmp_path, monkeypatch, 'storage_path = "old-blobs"\n')
    assert flat.effective_storage_path == tmp_path / "old-blobs"  # type: ignore[attr-defined]
    with pytest.raises(
        ConfigError, match=r"storage_path \(deprecated\) and storage\.filesystem\.path differ"
    ):
        _from_file(tmp_path, monkeypatch, 'storage_path = "a"\n[storage.filesystem]\npath = "b"\n')


def test_s3_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "s3-secret"
    secret.write_text("from-the-file\n")
    settings = _from_file(
        tmp_path,
        monkeypatch,
        '[storage]\ndriver = "s3"\n[storage.s3]\nbucket = "registry-blobs"\n'
        'endpoint_url = "http://127.0.0.1:9000/"\nprefix = "/prod/"\naccess_key = "AK"\n'
        'secret_key_file = "s3-secret"\nredirect = true\nredirect_expiry_seconds = 120\n'
        "part_size = 8388608\n",
    )
    s3 = settings.storage.s3  # type: ignore[attr-defined]
    assert (s3.bucket, s3.endpoint_url, s3.prefix, s3.part_size) == (
        "registry-blobs",
        "http://127.0.0.1:9000",
        "prod",
        8 << 20,
    )
    assert s3.secret_key.get_secret_value() == "from-the-file"
    # Never shown: not in the settings' repr, which logs and tracebacks may print.
    assert "from-the-file" not in repr(settings)
    driver = open_driver(settings, OWNER_ONLY)  # type: ignore[arg-type]
    assert isinstance(driver, S3Driver)
    assert driver.options.redirect_seconds == 120


def test_s3_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_S3_ACCESS_KEY", "env-access")
    monkeypatch.setenv("DOCKYARD_S3_SECRET_KEY", "env-secret")
    settings = load_settings(data_dir=tmp_path, storage={"driver": "s3", "s3": {"bucket": "abc"}})
    assert settings.storage.s3.access_key == "env-access"
    assert settings.storage.s3.secret_key is not None
    assert settings.storage.s3.secret_key.get_secret_value() == "env-secret"
    assert "env-secret" not in repr(settings)
    driver = open_driver(settings, OWNER_ONLY)
    assert isinstance(driver, S3Driver) and driver.options.redirect_seconds is None


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"driver": "s3"}, 'storage.s3.bucket is required when storage.driver is "s3"'),
        ({"driver": "nfs"}, "storage.driver"),
        ({"s3": {"bucket": "Not_A_Bucket"}}, "S3 bucket naming rules"),
        ({"s3": {"bucket": "ab"}}, "S3 bucket naming rules"),
        ({"s3": {"endpoint_url": "ftp://host"}}, "http:// or https:// URL"),
        ({"s3": {"endpoint_url": "http://host/path"}}, "http:// or https:// URL"),
        ({"s3": {"prefix": "a/../b"}}, "without empty, '.' or '..' parts"),
        ({"s3": {"part_size": 5 * 1024 * 1024 - 1}}, "from 5 MiB"),
        ({"s3": {"part_size": 6 * 1024**3}}, "from 5 MiB"),
        ({"s3": {"redirect_expiry_seconds": 0}}, "from 1 to 604800"),
        ({"s3": {"redirect_expiry_seconds": 8 * 86400}}, "from 1 to 604800"),
        ({"s3": {"access_key": "only-half"}}, "access_key and secret_key go together"),
        ({"s3": {"secret_key": "x", "secret_key_file": "/nonexistent"}}, "not both"),
        ({"s3": {"access_key": "a", "secret_key_file": "/nonexistent/s"}}, "cannot read secret_key_file"),
        ({"s3": {"bucket": "abc", "acess_key": "typo"}}, "acess_key"),
        ({"filesystem": {"path": "/x", "size": 1}}, "size"),
    ],
)
def test_bad_storage_settings_are_refused_clearly(
    tmp_path: Path, storage: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path, storage=storage)
    assert message in str(caught.value)
    assert str(caught.value).startswith("invalid settings: storage")


def test_storage_keys_from_the_environment_merge_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DOCKYARD_STORAGE__<SECTION>__<KEY> sets one key; the file's other keys stay."""
    monkeypatch.setenv("DOCKYARD_STORAGE__S3__REGION", "eu-west-1")
    monkeypatch.setenv("DOCKYARD_STORAGE__S3__PART_SIZE", str(6 << 20))
    settings = _from_file(tmp_path, monkeypatch, '[storage]\ndriver = "s3"\n[storage.s3]\nbucket = "abc"\n')
    s3 = settings.storage.s3  # type: ignore[attr-defined]
    assert (s3.bucket, s3.region, s3.part_size) == ("abc", "eu-west-1", 6 << 20)
    monkeypatch.setenv("DOCKYARD_STORAGE__S3__PART_SIZE", "1024")
    with pytest.raises(ConfigError, match="from 5 MiB"):
        load_settings()
