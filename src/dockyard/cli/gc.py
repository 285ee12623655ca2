"""`dockyard gc`: collect garbage now."""

from __future__ import annotations

import time
from pathlib import Path

import click

from dockyard.cli.options import open_services, registry_options, settings_from
from dockyard.cli.units import duration_option
from dockyard.content.gc import GcReport


@click.command()
@registry_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be removed, and how many bytes, without removing it; also list unreferenced "
    "blobs still within their grace period.",
)
@click.option(
    "--grace",
    "grace_seconds",
    type=click.IntRange(min=0),
    help="Leave alone anything linked or written this many seconds ago or less (default: gc_grace_seconds).",
)
@click.option(
    "--untagged-retention",
    "retention_seconds",
    callback=duration_option,
    help="Remove untagged manifests nothing needs once untagged this long: seconds or 90m, 12h, 7d. "
    "0 removes them all now (unlike the setting gc_untagged_retention_seconds, whose 0 keeps them). "
    "Default: the setting.",
)
def gc(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    dry_run: bool,
    grace_seconds: int | None,
    retention_seconds: int | None,
) -> None:
    """Remove untagged manifests, unreferenced blobs, expired uploads and orphaned files, while the
    registry keeps serving.

    A manifest is untagged garbage once no tag has pointed at it for the retention, unless an index
    lists it or it refers (as a signature does) to a manifest still present. A blob is garbage when no
    manifest in any repository references it and nothing linked it within the grace period, which
    protects pushes in flight.
    """
    settings = settings_from(config_file, data_dir=data_dir, database_url=database_url)
    services = open_services(settings)
    if grace_seconds is not None:
        services.gc.grace_seconds = grace_seconds
    if retention_seconds is not None:
        services.gc.untagged_retention_seconds = retention_seconds
    try:
        report = services.gc.run_by(None, dry_run)
    finally:
        services.db.close()
    _print(report)


def _print(report: GcReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    for repository, digest in report.manifests:
        click.echo(f"manifest {repository}@{digest}")
    for digest, size in report.blobs:
        click.echo(f"blob {digest} {size}")
    for upload_id in report.uploads:
        click.echo(f"upload {upload_id}")
    for path, size in report.orphan_files:
        click.echo(f"orphan {path} {size}")
    now = time.time()
    for digest, size, ready_at in report.waiting_blobs:
        click.echo(f"waiting {digest} {size} (grace period ends in {max(0, round(ready_at - now))} s)")
    click.echo(
        f"{verb} {len(report.manifests)} untagged manifests, {len(report.blobs)} blobs, "
        f"{len(report.uploads)} uploads, {len(report.orphan_files)} orphan files: {report.bytes} bytes"
    )
    if report.waiting_blobs:
        waiting = sum(size for _, size, _ in report.waiting_blobs)
        click.echo(
            f"{len(report.waiting_blobs)} unreferenced blobs ({waiting} bytes) wait out the grace period"
        )
    if report.failures:
        click.echo(f"{report.failures} removals failed (see the log); run gc again", err=True)
