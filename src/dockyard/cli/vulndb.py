"""`dockyard vulndb`: import OSV advisories into the vulnerability database, and report what it holds."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import click

from dockyard.app import build_services
from dockyard.cli.options import data_options, settings_from
from dockyard.scanning.errors import AdvisoryFormatError
from dockyard.scanning.vulndb import VulnDatabase


@click.group()
def vulndb() -> None:
    """The vulnerability database scans match against (OSV advisories)."""


def _record_count(path: Path) -> int | None:
    """How many records the import will read, when that is cheap to know (zip members, files)."""
    if path.is_dir():
        return sum(1 for p in path.rglob("*.json") if p.is_file())
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(1 for i in archive.infolist() if not i.is_dir() and i.filename.endswith(".json"))
    return None


def _default_source(path: Path) -> str:
    """The file or directory name without extension; for osv.dev's `<Ecosystem>/all.zip`, the ecosystem."""
    resolved = path.resolve()
    if resolved.name == "all.zip" and resolved.parent.name:
        return resolved.parent.name
    return resolved.stem


@vulndb.command(name="import")
@data_options
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--source",
    help="Name the advisories are stored under (default: the file or directory name without extension; "
    "for `<Ecosystem>/all.zip`, the ecosystem).",
)
def import_(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    path: Path,
    source: str | None,
) -> None:
    """Import OSV records from PATH: a zip as osv.dev publishes (`Go/all.zip`), a directory of JSON
    files, or one JSON file holding a record or a list of records.

    Importing again is safe: unchanged records are left alone, changed ones are overwritten and
    withdrawn ones are removed.
    """
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = build_services(settings)
    name = source or _default_source(path)
    try:
        length = _record_count(path)
        with click.progressbar(
            length=length or 0,
            label=f"importing {name}",
            hidden=length is None,
        ) as bar:
            report = VulnDatabase(services.db).import_path(path, name, progress=bar.update)
    except AdvisoryFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.db.close()
    click.echo(
        f"{name}: {report.total} records read, {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.withdrawn_removed} withdrawn removed"
    )


@vulndb.command()
@data_options
def status(config_file: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Show how many advisories each source holds and when the last import finished."""
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = build_services(settings)
    try:
        report = VulnDatabase(services.db).status()
    finally:
        services.db.close()
    for name, count in sorted(report.sources.items()):
        click.echo(f"{name} {count}")
    when = (
        datetime.fromtimestamp(report.last_import_at, UTC).isoformat(timespec="seconds")
        if report.last_import_at is not None
        else "never"
    )
    click.echo(f"total {report.total} advisories, last import {when}")
