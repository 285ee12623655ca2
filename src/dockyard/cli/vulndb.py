"""`dockyard vulndb`: import OSV advisories into the vulnerability database, and report what it holds."""

from __future__ import annotations

import contextlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from dockyard.cli.options import open_services, registry_options, settings_from
from dockyard.scanning.errors import ScanError
from dockyard.scanning.vulndb import VulnDatabase
from dockyard.scanning.vulndb_fetch import default_source, is_url


@click.group()
def vulndb() -> None:
    """The vulnerability database scans match against (OSV advisories)."""


def _record_count(location: str) -> int | None:
    """How many records the import will read, when that is cheap to know (local zip members, files)."""
    if is_url(location):
        return None
    path = Path(location)
    if path.is_dir():
        return sum(1 for p in path.rglob("*.json") if p.is_file())
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(1 for i in archive.infolist() if not i.is_dir() and i.filename.endswith(".json"))
    return None


@vulndb.command(name="import")
@registry_options
@click.argument("location", metavar="PATH|URL")
@click.option(
    "--source",
    help="Name the advisories are stored under (default: the file or directory name without extension; "
    "for `<Ecosystem>/all.zip`, the ecosystem).",
)
def import_(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    location: str,
    source: str | None,
) -> None:
    """Import OSV records from PATH or URL: a zip as osv.dev publishes
    (https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip), a directory of JSON files, or one
    JSON file holding a record or a list of records. A URL (http, https or file) is downloaded first.

    Importing again is safe: unchanged records are left alone, changed ones are overwritten and
    withdrawn ones are removed. Running servers re-match stored scan results on their own afterwards.
    """
    if not is_url(location) and not Path(location).exists():
        raise click.BadParameter(f"{location!r} is neither an existing path nor a URL", param_hint="PATH|URL")
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = open_services(settings)
    name = source or default_source(location)
    try:
        with contextlib.ExitStack() as bars:
            download = _Bar(bars, f"downloading {name}")
            records = _Bar(bars, f"importing {name}", _record_count(location))
            name, report = services.vulndb_sync.import_location(
                location,
                name,
                on_download=download.start,
                downloaded=download.update,
                imported=records.update,
            )
    except ScanError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.db.close()
    click.echo(
        f"{name}: {report.total} records read, {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.withdrawn_removed} withdrawn removed"
    )


class _Bar:
    """A progress bar opened when its length is known (or at the first update)."""

    def __init__(self, stack: contextlib.ExitStack, label: str, length: int | None = None) -> None:
        self.stack = stack
        self.label = label
        self.bar: Any = None
        if length is not None:
            self.start(length)

    def start(self, length: int | None) -> None:
        """Show the bar (a bar of unknown length shows nothing until the end)."""
        self.bar = self.stack.enter_context(
            click.progressbar(length=length or 0, label=self.label, hidden=length is None)
        )

    def update(self, amount: int) -> None:
        """Advance the bar."""
        if self.bar is None:
            self.start(None)
        self.bar.update(amount)


@vulndb.command()
@registry_options
def status(config_file: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Show how many advisories each source holds and when the last import finished."""
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = open_services(settings)
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
