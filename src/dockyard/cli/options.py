"""Options shared by several commands, each with its DOCKYARD_* environment variable."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dockyard.auth.errors import AuthError
from dockyard.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from dockyard.app import Services

F = TypeVar("F", bound=Callable[..., Any])


def data_options(func: F) -> F:
    """--config, --data-dir and --database-url."""
    func = click.option(
        "--database-url",
        envvar="DOCKYARD_DATABASE_URL",
        help="SQLAlchemy URL of the metadata database (default: SQLite in the data directory). "
        "Example: postgresql://user:pass@db:5432/dockyard",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="DOCKYARD_DATA_DIR",
        help="Directory for the database, blobs and keys (default: /var/lib/dockyard as root, "
        "else ~/.local/share/dockyard).",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar="DOCKYARD_CONFIG",
        help="TOML configuration file; environment variables and options override it.",
    )(func)
    return func


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the file, the environment and the given options; a bad value is a clean CLI error."""
    if config_file is not None:
        os.environ["DOCKYARD_CONFIG"] = str(config_file)
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def local_services(
    config_file: Path | None, data_dir: Path | None, database_url: str | None
) -> Iterator[Services]:
    """The services on the data directory or database itself, for commands run on the server's machine;
    a refusal of the domain becomes a clean CLI error, and the database is closed at the end."""
    from dockyard.app import build_services

    services = build_services(settings_from(config_file, data_dir=data_dir, database_url=database_url))
    try:
        yield services
    except AuthError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.db.close()
