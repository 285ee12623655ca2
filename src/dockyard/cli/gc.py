"""`dockyard gc`: collect garbage now."""

from __future__ import annotations

from pathlib import Path

import click

from dockyard.cli.options import open_services, registry_options, settings_from


@click.command()
@registry_options
@click.option(
    "--dry-run", is_flag=True, help="List what would be removed, and how many bytes, without removing it."
)
@click.option(
    "--grace",
    "grace_seconds",
    type=click.IntRange(min=0),
    help="Leave alone anything linked or written this many seconds ago or less (default: gc_grace_seconds).",
)
def gc(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    dry_run: bool,
    grace_seconds: int | None,
) -> None:
    """Remove unreferenced blobs, expired uploads and orphaned files, while the registry keeps serving.

    A blob is garbage when no manifest in any repository references it and nothing linked it
    within the grace period, which protects pushes in flight.
    """
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = open_services(settings)
    if grace_seconds is not None:
        services.gc.grace_seconds = grace_seconds
    try:
        report = services.gc.run(dry_run=dry_run)
    finally:
        services.db.close()
    verb = "would remove" if dry_run else "removed"
    for digest, size in report.blobs:
        click.echo(f"blob {digest} {size}")
    for upload_id in report.uploads:
        click.echo(f"upload {upload_id}")
    for path, size in report.orphan_files:
        click.echo(f"orphan {path} {size}")
    click.echo(
        f"{verb} {len(report.blobs)} blobs, {len(report.uploads)} uploads, "
        f"{len(report.orphan_files)} orphan files: {report.bytes} bytes"
    )
