"""`dockyard admin`: manage users, administrators and signing keys from the server's own machine."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from dockyard.app import AuthServices
from dockyard.auth.identity import Identity
from dockyard.cli.options import local_services, registry_options
from dockyard.events.audit import CLI

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def admin() -> None:
    """Manage local users, system administrators and token signing keys.

    These commands work on the data directory (or database) directly, so they need no login:
    run them as the user that runs `dockyard serve`, with the same settings (settings file,
    DOCKYARD_* variables or --data-dir).
    """


@contextmanager
def _auth(
    config_file: Path | None, data_dir: Path | None, database_url: str | None
) -> Iterator[AuthServices]:
    with local_services(config_file, data_dir, database_url) as services:
        yield services.auth


def _password_option(func: F) -> F:
    return click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from standard input (one line) instead of prompting for it.",
    )(func)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@admin.command("create-user")
@registry_options
@_password_option
@click.option("--admin", "is_admin", is_flag=True, help="Make the user a system administrator.")
@click.option("--full-name", default="", help="The user's display name.")
@click.argument("name")
def create_user(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    password_stdin: bool,
    is_admin: bool,
    full_name: str,
    name: str,
) -> None:
    """Create the local user NAME (asks for the password)."""
    password = _read_password(password_stdin)
    with _auth(config_file, data_dir, database_url) as auth:
        auth.accounts.create_user(None, name, password, is_admin=is_admin, full_name=full_name)
    click.echo(f"created user {name}" + (" (system administrator)" if is_admin else ""))


@admin.command("make-admin")
@registry_options
@click.argument("name")
def make_admin(config_file: Path | None, data_dir: Path | None, database_url: str | None, name: str) -> None:
    """Make the user NAME a system administrator."""
    with _auth(config_file, data_dir, database_url) as auth:
        auth.accounts.set_admin(None, name, True)
    click.echo(f"{name} is now a system administrator")


@admin.command("unmake-admin")
@registry_options
@click.argument("name")
def unmake_admin(
    config_file: Path | None, data_dir: Path | None, database_url: str | None, name: str
) -> None:
    """Make the user NAME an ordinary user again (the last administrator stays one)."""
    with _auth(config_file, data_dir, database_url) as auth:
        auth.accounts.set_admin(None, name, False)
    click.echo(f"{name} is no longer a system administrator")


@admin.command("passwd")
@registry_options
@_password_option
@click.argument("name")
def passwd(
    config_file: Path | None, data_dir: Path | None, database_url: str | None, password_stdin: bool, name: str
) -> None:
    """Reset the password of the user NAME; their docker logins (refresh tokens) end."""
    password = _read_password(password_stdin)
    with _auth(config_file, data_dir, database_url) as auth:
        auth.accounts.set_password(None, name, password)
    click.echo(f"password of {name} changed")


@admin.command("list-users")
@registry_options
def list_users(config_file: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """List local users: name, administrator flag, active flag."""
    with _auth(config_file, data_dir, database_url) as auth:
        rows = auth.accounts.list_accounts(_cli_identity(), "user")
    for row in rows:
        flags = [flag for flag, on in (("admin", row.is_admin), ("disabled", not row.is_active)) if on]
        click.echo(f"{row.name}\t{','.join(flags) or '-'}")


@admin.command("rotate-key")
@registry_options
@click.option("--prune", is_flag=True, help="Also delete every older key (tokens they signed stop working).")
def rotate_key(
    config_file: Path | None, data_dir: Path | None, database_url: str | None, prune: bool
) -> None:
    """Start signing registry tokens with a new key, on every replica of the cluster.

    Running servers sign with it within 10 seconds; the previous key verifies until the tokens it signed
    have expired (or until --prune).
    """
    with _auth(config_file, data_dir, database_url) as auth:
        rotation = auth.keys.rotate(CLI, prune=prune)
    removed = f"; removed {len(rotation.removed)} older keys" if rotation.removed else ""
    click.echo(f"new signing key {rotation.key.kid}{removed}")


def _cli_identity() -> Identity:
    # Whoever can run this command can read the database: they act as a system administrator.
    return Identity(user_id=0, name="cli", is_admin=True)
