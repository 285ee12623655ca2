"""Options shared by several commands, each with its DOCKYARD_* environment variable."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dockyard.auth.errors import AuthError
from dockyard.config import DEFAULT_CONFIG_FILES, ConfigError, Settings, config_file, load_settings
from dockyard.db.engine import DatabaseUnavailable
from dockyard.db.presence import database_initialised
from dockyard.storage.permissions import modes_for, restrict_process

if TYPE_CHECKING:
    from dockyard.app import Services

F = TypeVar("F", bound=Callable[..., Any])


def data_options(func: F) -> F:
    """--config, --data-dir and --database-url, for `dockyard serve`."""
    return _location(func, "Directory for the database, blobs and keys")


def _location(func: F, data_dir_help: str) -> F:
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
        help=f"{data_dir_help} (default: /var/lib/dockyard as root, else ~/.local/share/dockyard).",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar="DOCKYARD_CONFIG",
        help="TOML configuration file (default: ./dockyard.toml, else /etc/dockyard/dockyard.toml, "
        "if present); environment variables and options override it.",
    )(func)
    return func


_INIT_KEY = "dockyard.init"


def _remember_init(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[_INIT_KEY] = value


def registry_options(func: F) -> F:
    """--config, --data-dir and --database-url naming an existing registry, and --init to make one."""
    func = click.option(
        "--init",
        is_flag=True,
        expose_value=False,
        callback=_remember_init,
        help="Create a new, empty registry if none is found where the settings point "
        "(without it, the command refuses).",
    )(func)
    return _location(func, "Data directory of the registry to work on, the one `dockyard serve` uses")


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the file, the environment and the given options; a bad value is a clean CLI error."""
    if config_file is not None:
        os.environ["DOCKYARD_CONFIG"] = str(config_file)
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    # Files libraries make (SQLite's journals, TLS files) get the data directory's modes too; the worker
    # processes `dockyard serve` forks inherit this umask.
    restrict_process(modes_for(settings.data_group_readable))
    return settings


def open_services(settings: Settings) -> Services:
    """The services of the registry the settings point at. Refuses, with a clean CLI error, to make a new
    registry there unless the command was given --init: a command run without the server's settings
    would otherwise quietly work on an empty registry of its own."""
    from dockyard.app import build_services

    context = click.get_current_context(silent=True)
    # Click shares `meta` across a command's contexts, so the group's child sees --init here.
    if not (context is not None and context.meta.get(_INIT_KEY)):
        try:
            found = database_initialised(settings.effective_database_url)
        except DatabaseUnavailable as exc:
            raise click.ClickException(f"cannot reach the database: {exc}") from exc
        if not found:
            raise click.ClickException(no_registry_message(settings))
    try:
        return build_services(settings)
    except DatabaseUnavailable as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from exc


def no_registry_message(settings: Settings) -> str:
    """Why a command refuses to run where no registry exists, and how to point it at the right one."""
    where = (
        f"in the database {settings.database_url}"
        if settings.database_url
        else f"in the data directory {settings.data_dir}"
    )
    source = config_file()
    told = f"settings file {source}" if source else "no settings file"
    defaults = " or ".join(str(p) if p.is_absolute() else f"./{p}" for p in DEFAULT_CONFIG_FILES)
    return (
        f"there is no Dockyard registry {where} ({told}); this command would create a new, empty one. "
        "Point it at the server's registry with the settings `dockyard serve` uses: --config FILE or "
        f"DOCKYARD_CONFIG (a file at {defaults} is found by default), or --data-dir / DOCKYARD_DATA_DIR, "
        "--database-url / DOCKYARD_DATABASE_URL. To create a new registry here, add --init"
    )


@contextmanager
def local_services(
    config_file: Path | None, data_dir: Path | None, database_url: str | None
) -> Iterator[Services]:
    """The services on the data directory or database itself, for commands run on the server's machine;
    a refusal of the domain becomes a clean CLI error, and the database is closed at the end."""
    services = open_services(settings_from(config_file, data_dir=data_dir, database_url=database_url))
    try:
        yield services
    except AuthError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.db.close()
