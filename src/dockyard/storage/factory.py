"""The blob storage driver the settings choose ([storage] driver = "filesystem" | "s3")."""

from __future__ import annotations

import logging

from dockyard.config import Settings
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.permissions import Modes
from dockyard.storage.s3 import S3Driver, S3Options

log = logging.getLogger(__name__)


def open_driver(settings: Settings, modes: Modes) -> StorageDriver:
    """A driver on the configured storage; files (filesystem) get `modes`."""
    storage = settings.storage
    if storage.driver == "s3":
        s3 = storage.s3
        assert s3.bucket is not None  # checked with the settings
        return S3Driver(
            S3Options(
                bucket=s3.bucket,
                endpoint_url=s3.endpoint_url,
                region=s3.region,
                prefix=s3.prefix,
                access_key=s3.access_key,
                secret_key=s3.secret_key.get_secret_value() if s3.secret_key else None,
                part_size=s3.part_size,
                redirect_seconds=s3.redirect_expiry_seconds if s3.redirect else None,
            )
        )
    if settings.storage_path is not None and storage.filesystem.path is None:
        log.warning("the setting storage_path is deprecated: use path in a [storage.filesystem] section")
    return FilesystemDriver(settings.effective_storage_path, modes)
