"""Settings: one TOML file plus DOCKYARD_* environment variables, validated once at start.

Precedence, highest first: command-line options, environment variables, the configuration file, defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dockyard.auth.proxies import parse_networks

# The data directory of a registry run as root when nothing else is said (tests point it elsewhere).
SYSTEM_DATA_DIR = Path("/var/lib/dockyard")


def default_data_dir() -> Path:
    """Where Dockyard keeps its state when nothing else is said: SYSTEM_DATA_DIR as root, else the
    user's XDG data directory."""
    if os.geteuid() == 0:
        return SYSTEM_DATA_DIR
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dockyard"


class ConfigError(ValueError):
    """A setting is missing, malformed or contradicts another."""


class ClusterSettings(BaseModel):
    """The `[cluster]` section (docs/configuration.md): where Patroni's REST API answers for each
    database member, for `dockyard cluster status`; empty when the database is not managed by Patroni."""

    model_config = {"extra": "forbid"}

    patroni_urls: list[str] = []
    # Each member's answer is awaited this long at most (they are asked in parallel).
    patroni_timeout_seconds: float = 2.0

    @field_validator("patroni_urls")
    @classmethod
    def _check_patroni_urls(cls, value: list[str]) -> list[str]:
        if len(value) > 16:
            raise ValueError("at most 16 Patroni URLs")
        for url in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?", url):
                raise ValueError(f"{url!r} is not an http(s)://host:port URL")
        return [url.rstrip("/") for url in value]

    @field_validator("patroni_timeout_seconds")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if not 0.1 <= value <= 30:
            raise ValueError("must be between 0.1 and 30 seconds")
        return value


MIB = 1 << 20


class FilesystemStorageSettings(BaseModel):
    """[storage.filesystem]: blobs in a directory (on NFS for several replicas)."""

    model_config = ConfigDict(extra="forbid")

    # Default: `storage` inside the data directory.
    path: Path | None = None


class S3StorageSettings(BaseModel):
    """[storage.s3]: blobs in an S3-compatible bucket (docs/configuration.md, "Blob storage")."""

    model_config = ConfigDict(extra="forbid")

    bucket: str | None = None
    # None: AWS's own endpoint for the region; else e.g. https://s3.example.net or http://127.0.0.1:9000.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    # Keys go under this prefix, so one bucket can hold several registries.
    prefix: str = ""
    # Also DOCKYARD_S3_ACCESS_KEY / DOCKYARD_S3_SECRET_KEY or secret_key_file; none: boto3's own chain
    # (instance role, ~/.aws). Never logged.
    access_key: str | None = None
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    # Answer blob GETs with a 307 to a presigned URL on the bucket, valid this long.
    redirect: bool = False
    redirect_expiry_seconds: int = 300
    # Size of each multipart upload part; also the most an upload holds in memory per request.
    part_size: int = 16 * MIB

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str | None) -> str | None:
        # S3's bucket naming rules (DNS-compatible names).
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
            raise ValueError("must be 3 to 63 lowercase letters, digits, '.' or '-' (S3 bucket naming rules)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+/?", value):
            raise ValueError("must be an http:// or https:// URL with a host and no path")
        return value.rstrip("/") if value else value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in {"", ".", ".."} for part in value.split("/")) and value:
            raise ValueError("must be '/'-separated names without empty, '.' or '..' parts")
        if len(value) > 256 or any(ord(c) < 32 for c in value):
            raise ValueError("must be at most 256 printable characters")
        return value

    @field_validator("redirect_expiry_seconds")
    @classmethod
    def _check_expiry(cls, value: int) -> int:
        # S3 signs URLs for at most 7 days; a short life limits what a leaked URL gives away.
        if not 1 <= value <= 7 * 24 * 3600:
            raise ValueError("must be from 1 to 604800 seconds (7 days)")
        return value

    @field_validator("part_size")
    @classmethod
    def _check_part_size(cls, value: int) -> int:
        if not 5 * MIB <= value <= 5 * 1024 * MIB:
            raise ValueError("must be from 5 MiB (5242880, S3's smallest part) to 5 GiB")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> S3StorageSettings:
        """Fill the keys from the environment or the secret file; both or neither."""
        self.access_key = self.access_key or os.environ.get("DOCKYARD_S3_ACCESS_KEY") or None
        if self.secret_key is None and os.environ.get("DOCKYARD_S3_SECRET_KEY"):
            self.secret_key = SecretStr(os.environ["DOCKYARD_S3_SECRET_KEY"])
        if self.secret_key_file is not None:
            if self.secret_key is not None:
                raise ValueError("give secret_key or secret_key_file, not both")
            try:
                secret = self.secret_key_file.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"cannot read secret_key_file {self.secret_key_file}: {exc.strerror}"
                ) from exc
            if not secret:
                raise ValueError(f"secret_key_file {self.secret_key_file} is empty")
            self.secret_key = SecretStr(secret)
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError(
                "access_key and secret_key go together: give both, or neither (boto3's own chain)"
            )
        return self


class StorageSettings(BaseModel):
    """[storage]: where blob bytes live."""

    model_config = ConfigDict(extra="forbid")

    driver: Literal["filesystem", "s3"] = "filesystem"
    filesystem: FilesystemStorageSettings = Field(default_factory=FilesystemStorageSettings)
    s3: S3StorageSettings = Field(default_factory=S3StorageSettings)

    @model_validator(mode="after")
    def _check_driver(self) -> StorageSettings:
        if self.driver == "s3" and self.s3.bucket is None:
            raise ValueError('storage.s3.bucket is required when storage.driver is "s3"')
        return self


class Settings(BaseSettings):
    """Every Dockyard setting. See docs/configuration.md for each one."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    listen: str = "0.0.0.0:5000"
    external_url: str | None = None
    database_url: str | None = None
    # Blob storage ([storage] sections); `storage_path` is the deprecated flat name of
    # storage.filesystem.path.
    storage: StorageSettings = Field(default_factory=StorageSettings)
    storage_path: Path | None = None
    # Directories 0750 and files 0640 instead of 0700/0600, for a backup user in the registry's group.
    data_group_readable: bool = False
    log_level: str = "info"
    # Observability (docs/configuration.md, "Logs and metrics").
    log_format: str = "text"
    access_log: bool = True
    trust_request_id: bool = False
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # A reverse proxy terminates TLS: external_url may be https:// while this server listens in plain HTTP.
    behind_tls_proxy: bool = False

    max_manifest_bytes: int = 4 * 1024 * 1024
    upload_expiry_seconds: int = 24 * 3600
    gc_interval_seconds: int = 3600
    gc_grace_seconds: int = 3600
    # Untagged manifests nothing needs are collected after this long; 0 keeps them forever.
    gc_untagged_retention_seconds: int = 7 * 24 * 3600

    # This replica's id in the cluster (docs/configuration.md); default: host name and port.
    replica_id: str | None = None
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    # Access control (docs/configuration.md, "Access control").
    anonymous_pull: bool = False
    create_on_push: bool = True
    service: str = "dockyard"
    token_issuer: str = "dockyard"  # noqa: S105 (a name, not a secret)
    token_ttl_seconds: int = 300
    # A registry token's user is re-checked (active, still there) at most this long after the last check.
    token_account_check_seconds: int = 5
    refresh_token_ttl_seconds: int = 90 * 24 * 3600
    session_ttl_seconds: int = 12 * 3600
    admin_password: SecretStr | None = None
    # Encrypts the token signing keys stored in the database (docs/configuration.md, "Signing keys").
    signing_key_passphrase: SecretStr | None = None
    # Days after which the cluster rotates its signing key by itself; 0 never does.
    signing_key_rotation_days: int = 0
    admin_password_file: Path | None = None
    audit_retention_days: int = 90
    login_throttle_threshold: int = 5
    login_throttle_base_seconds: int = 2
    login_throttle_max_seconds: int = 900
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); nobody else's is read.
    trusted_proxies: list[str] = []
    # Record every manifest pull (by tag or digest) in the audit log.
    audit_pulls: bool = False
    # The dashboard's statistics (docs/ui.md): how often each process adds the pulls it counted to the
    # database, and how often one replica snapshots every repository's vulnerability counts for the day.
    activity_flush_seconds: int = 10
    vulnerability_snapshot_interval_seconds: int = 3600

    # Content caches (docs/caches.md): how long a redirect's grant lives, how often caches are pinged.
    cache_grant_ttl_seconds: int = 120
    cache_check_interval_seconds: int = 15

    # Vulnerability scanning (docs/scanning.md).
    scan_workers: int = 1
    scan_poll_seconds: int = 2
    job_retention_days: int = 7
    vulndb_sync_urls: list[str] = []
    vulndb_sync_interval_seconds: int = 86400
    vulndb_max_download_bytes: int = 4 * 1024**3
    vulndb_max_upload_bytes: int = 1024**3

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError("listen must be HOST:PORT, for example 0.0.0.0:5000")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be one of debug, info, warning, error")
        return value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        value = value.lower()
        if value not in {"text", "json"}:
            raise ValueError("log_format must be text or json")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("external_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator(
        "max_manifest_bytes",
        "upload_expiry_seconds",
        "gc_interval_seconds",
        "gc_grace_seconds",
        "token_ttl_seconds",
        "refresh_token_ttl_seconds",
        "session_ttl_seconds",
        "audit_retention_days",
        "login_throttle_threshold",
        "login_throttle_base_seconds",
        "login_throttle_max_seconds",
        "scan_poll_seconds",
        "job_retention_days",
        "vulndb_sync_interval_seconds",
        "vulndb_max_download_bytes",
        "vulndb_max_upload_bytes",
        "cache_grant_ttl_seconds",
        "cache_check_interval_seconds",
        "activity_flush_seconds",
        "vulnerability_snapshot_interval_seconds",
    )
    @classmethod
    def _check_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number")
        return value

    @field_validator("vulndb_sync_urls")
    @classmethod
    def _check_sync_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://", "file://")):
                raise ValueError(f"{url!r} is not an http, https or file URL")
        return value

    @field_validator("gc_untagged_retention_seconds")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (keep untagged manifests) or a number of seconds")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("scan_workers")
    @classmethod
    def _check_scan_workers(cls, value: int) -> int:
        if not 0 <= value <= 16:
            raise ValueError("must be from 0 (no scanning in this process) to 16")
        return value

    @field_validator("token_ttl_seconds")
    @classmethod
    def _check_token_ttl(cls, value: int) -> int:
        # Registry tokens cannot be revoked: keep them short-lived.
        if value > 3600:
            raise ValueError("must be at most 3600 seconds")
        return value

    @field_validator("token_account_check_seconds")
    @classmethod
    def _check_account_check(cls, value: int) -> int:
        # It bounds how long a deactivated user's registry tokens keep working.
        if not 0 <= value <= 60:
            raise ValueError("must be from 0 (check on every request) to 60 seconds")
        return value

    @field_validator("service", "token_issuer")
    @classmethod
    def _check_token_name(cls, value: str) -> str:
        if not value or len(value) > 255 or any(c in value for c in '"\\\r\n'):
            raise ValueError("must be 1 to 255 characters without quotes, backslashes or line breaks")
        return value

    @field_validator("replica_id")
    @classmethod
    def _check_replica_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", value):
            raise ValueError("must be 1 to 128 letters, digits, '.', '_', ':' or '-'")
        return value

    @field_validator("signing_key_passphrase")
    @classmethod
    def _check_signing_key_passphrase(cls, value: SecretStr | None) -> SecretStr | None:
        # A short passphrase is guessed offline from a stolen database: ask for a random one.
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a long random secret)")
        return value

    @field_validator("signing_key_rotation_days")
    @classmethod
    def _check_rotation_days(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (never) or a number of days")
        return value

    @field_validator("admin_password")
    @classmethod
    def _check_admin_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters")
        return value

    @model_validator(mode="after")
    def _check_storage_path(self) -> Settings:
        path = self.storage.filesystem.path
        if self.storage_path is not None and path is not None and self.storage_path != path:
            raise ValueError(
                "storage_path (deprecated) and storage.filesystem.path differ: keep only the latter"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @property
    def listen_host(self) -> str:
        """The host part of `listen`, without IPv6 brackets."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        """The port part of `listen`."""
        return int(self.listen.rpartition(":")[2])

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'dockyard.db'}"

    @property
    def effective_storage_path(self) -> Path:
        """The filesystem blob store's root, defaulting to `storage` inside the data directory."""
        return self.storage.filesystem.path or self.storage_path or self.data_dir / "storage"


# Searched in this order when neither --config nor DOCKYARD_CONFIG names a file: the current directory (a
# checkout, `scripts/start`), then the system-wide place (a package install).
DEFAULT_CONFIG_FILES = (Path("dockyard.toml"), Path("/etc/dockyard/dockyard.toml"))
# Settings holding a path: a relative one in the file is relative to the file, not to the current directory.
_PATH_KEYS = frozenset({"data_dir", "storage_path", "tls_cert", "tls_key", "tls_ca", "admin_password_file"})


def config_file() -> Path | None:
    """The settings file in force: DOCKYARD_CONFIG (also set by --config), else the first default found."""
    named = os.environ.get("DOCKYARD_CONFIG")
    if named:
        return Path(named)
    for candidate in DEFAULT_CONFIG_FILES:
        if candidate.is_file():
            return candidate.absolute()
    return None


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the settings file (see `config_file`), if there is one."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file()
        if path is None:
            return {}
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not UTF-8 text (byte {exc.start})") from exc
        values = {key.replace("-", "_"): value for key, value in data.items()}
        base = path.absolute().parent
        for key in _PATH_KEYS & values.keys():
            if isinstance(values[key], str):
                values[key] = base / Path(values[key]).expanduser()
        _nested_paths(values.get("storage"), base)
        return values


# Paths inside [storage] sections, relative to the file like the flat ones.
_NESTED_PATH_KEYS = (("filesystem", "path"), ("s3", "secret_key_file"))


def _nested_paths(storage: Any, base: Path) -> None:
    """Make the [storage] sections' relative paths relative to the settings file."""
    if not isinstance(storage, dict):
        return
    for section, key in _NESTED_PATH_KEYS:
        table = storage.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            table[key] = base / Path(table[key]).expanduser()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation failures into one readable ConfigError."""
    from pydantic import ValidationError

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
