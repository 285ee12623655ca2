"""Where `dockyard certs` keeps its files, and how it writes them safely."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from dockyard.config import ConfigError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class TlsLayout:
    """The four files of a Dockyard TLS directory."""

    directory: Path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TlsLayout:
        """The default TLS directory, `<data_dir>/tls`."""
        return cls(data_dir / "tls")

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients are told to trust."""
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key, used only to sign server certificates."""
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        """The certificate the registry presents."""
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        """The registry's private key."""
        return self.directory / "server.key"


def write_file(path: Path, data: bytes, *, private: bool, overwrite: bool) -> None:
    """Write `data` to `path` atomically, with mode 0600 (private) or 0644.

    The content goes to a temporary file created with its final mode, so a private key is never
    readable by others, not even between creation and a later chmod. Without `overwrite`, an
    existing file is never replaced, even one that appeared after the caller checked.
    """
    mode = PRIVATE_MODE if private else PUBLIC_MODE
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            # The umask may have removed bits from 0644; set the exact mode we promise.
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            # link() fails if the target exists, unlike rename().
            os.link(temp, path)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; use --force to replace it") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        temp.unlink(missing_ok=True)
