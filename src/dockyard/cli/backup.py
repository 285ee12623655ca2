"""`dockyard backup` and `dockyard restore`: a consistent archive of a deployment, and bringing one back."""

from __future__ import annotations

from pathlib import Path

import click

from dockyard.cli.options import data_options, local_services, registry_options, settings_from
from dockyard.db.engine import DatabaseUnavailable


@click.command()
@registry_options
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--with-blobs",
    is_flag=True,
    help="Also copy the bytes of every blob the metadata records (streamed from the blob store).",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def backup(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    output: Path,
    with_blobs: bool,
    force: bool,
) -> None:
    """Write a consistent archive of the registry's metadata and signing keys to OUTPUT, while it serves.

    Every table is read at one database snapshot. The archive (mode 0600) holds private signing keys and
    password hashes: keep it encrypted and offline (see docs/backup.md). Blob data only with --with-blobs.
    """
    from dockyard.backup.create import BackupFailed, create_backup

    with local_services(config_file, data_dir, database_url) as services:
        try:
            report = create_backup(services.db, services.store, output, with_blobs, force)
        except (BackupFailed, DatabaseUnavailable) as exc:
            raise click.ClickException(str(exc)) from exc
    manifest = report.manifest
    rows = sum(entry.rows for entry in manifest.tables)
    click.echo(
        f"wrote {report.path}: {len(manifest.tables)} tables, {rows} rows, schema revision "
        f"{manifest.alembic_revision}, taken at {manifest.created_at}"
    )
    if manifest.blobs.included:
        click.echo(f"blobs: {manifest.blobs.count} ({manifest.blobs.bytes} bytes)")
        if manifest.blobs.missing:
            click.echo(
                f"warning: {len(manifest.blobs.missing)} blobs recorded in the database were missing from "
                f"the blob store and are not in the archive: {', '.join(manifest.blobs.missing[:5])}",
                err=True,
            )
    else:
        click.echo("blobs: not included (add --with-blobs, or back up the blob store separately)")


@click.command()
@data_options
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def restore(config_file: Path | None, data_dir: Path | None, database_url: str | None, archive: Path) -> None:
    """Restore ARCHIVE (made by `dockyard backup`) into an empty deployment.

    The settings name the target as for `dockyard serve`; its database must hold no repository, account or
    blob (a new data directory, or a new, empty PostgreSQL database). Every member of the archive is
    checked before anything is written. Stop every replica of the target first.
    """
    from dockyard.backup.restore import RestoreFailed, restore_backup

    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    try:
        report = restore_backup(archive, settings)
    except (RestoreFailed, DatabaseUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    manifest = report.manifest
    click.echo(
        f"restored {archive} (Dockyard {manifest.dockyard_version}, {manifest.source_database}, "
        f"taken at {manifest.created_at})"
    )
    restored = {name: count for name, count in report.rows.items() if name not in report.skipped_tables}
    click.echo(f"{sum(restored.values())} rows in {len(restored)} tables")
    for name, count in restored.items():
        if count:
            click.echo(f"  {name}: {count}")
    if report.skipped_tables:
        click.echo(f"  not restored (state of the old processes): {', '.join(report.skipped_tables)}")
    if manifest.blobs.included:
        click.echo(
            f"blobs: {report.blobs_written} written, {report.blobs_present} already in the store "
            f"({report.blob_bytes} bytes)"
        )
    if report.missing_count:
        click.echo(
            f"warning: {report.missing_count} blobs the metadata records are missing from the blob store "
            f"(pulls of images using them will fail until they are copied back): "
            f"{', '.join(report.missing_blobs)}",
            err=True,
        )
