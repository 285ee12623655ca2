"""`dockyard scan`: show an image's vulnerabilities, or scan it now, from the server's own machine."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from dockyard.app import Services
from dockyard.auth.identity import Identity
from dockyard.cli.options import local_services, registry_options
from dockyard.scanning.results import SEVERITIES, FindingFilter, ScanReport, StoredFinding

# The command line works on the data directory directly, as the system administrator would.
OPERATOR = Identity(user_id=0, name="dockyard-cli", is_admin=True)
_BUSY = ("queued", "running")


@click.group()
def scan() -> None:
    """Vulnerability scan results of images, and scans on demand."""


def split_reference(text: str) -> tuple[str, str]:
    """(repository, tag or digest) of `REPO:TAG`, `REPO@DIGEST` or `REPO` (tag latest); a leading
    registry host (`registry.example.com:5000/`) is dropped, since this command reads the local data."""
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        text = rest
    if "@" in text:
        name, _, reference = text.partition("@")
    else:
        name, colon, tag = text.rpartition(":")
        name, reference = (name, tag) if colon and "/" not in tag else (text, "latest")
    if not name or not reference:
        raise click.BadParameter(f"{text!r}: use REPOSITORY:TAG or REPOSITORY@DIGEST", param_hint="IMAGE")
    return name, reference


def _counts(counts: dict[str, int]) -> str:
    return "  ".join(f"{label} {counts.get(label, 0)}" for label in SEVERITIES)


def _short(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _print_report(report: ScanReport, findings: list[StoredFinding]) -> None:
    click.echo(f"{report.repository}@{report.digest}: {report.status}  ({_counts(report.counts)})")
    images = [
        [
            image.platform or "image",
            _short(image.digest),
            image.os or "unknown OS",
            f"{image.packages} packages",
            image.status,
            f"({_counts(image.counts)})",
        ]
        for image in report.images
    ]
    for line in _table(images) if images else []:
        click.echo(f"  {line}")
    for image in report.images:
        if image.error:
            click.echo(f"  {image.platform or 'image'} error: {image.error}")
    for reason in report.skipped:
        click.echo(f"  skipped {reason}")
    if not findings:
        if report.status == "done":
            click.echo("no vulnerabilities found")
        return
    several = len(report.images) > 1
    header = ["VULNERABILITY", "SEVERITY", "PACKAGE", "INSTALLED", "FIXED", "LAYER", "PATH"]
    rows = [[*(["PLATFORM"] if several else []), *header]]
    for f in findings:
        cve = next((a for a in f.aliases if a.startswith("CVE-")), None)
        name = f"{f.vuln_id} ({cve})" if cve and cve != f.vuln_id else f.vuln_id
        hidden = " (hidden)" if f.hidden else ""
        row = [name, f.severity + hidden, f.package, f.installed_version, f.fixed_version or "-"]
        row += [_short(f.layer_digest), f.path]
        rows.append([*([f.platform or "-"] if several else []), *row])
    click.echo()
    for line in _table(rows):
        click.echo(line)


def _json(report: ScanReport, findings: list[StoredFinding]) -> str:
    def default(value: Any) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    return json.dumps(
        {"report": asdict(report), "vulnerabilities": [asdict(f) for f in findings]},
        default=default,
        indent=2,
    )


def _show(services: Services, name: str, reference: str, wanted: FindingFilter, as_json: bool) -> None:
    report = services.scans.report(OPERATOR, name, reference)
    if report.status == "not_scanned":
        image = f"{name}@{report.digest}"
        if not report.images:
            raise click.ClickException(f"{image} holds no image to scan: {'; '.join(report.skipped)}")
        raise click.ClickException(f"{image} has not been scanned; scan it with `dockyard scan run {image}`")
    findings = services.scans.findings(OPERATOR, name, report.digest, wanted)
    if as_json:
        click.echo(_json(report, findings))
    else:
        _print_report(report, findings)


def _filter_options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print the report and findings as JSON.")(
        func
    )
    func = click.option(
        "--include-hidden", is_flag=True, help="Also list findings hidden by administrators."
    )(func)
    func = click.option("--package", help="Only this package (binary or source name).")(func)
    func = click.option(
        "--severity",
        "severities",
        multiple=True,
        type=click.Choice(SEVERITIES, case_sensitive=False),
        help="Only these severities (repeatable).",
    )(func)
    return func


def _wanted(severities: tuple[str, ...], package: str | None, include_hidden: bool) -> FindingFilter:
    return FindingFilter(frozenset(s.upper() for s in severities), package, None, include_hidden)


@scan.command()
@registry_options
@click.argument("image")
@_filter_options
def show(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    image: str,
    severities: tuple[str, ...],
    package: str | None,
    include_hidden: bool,
    as_json: bool,
) -> None:
    """Show the vulnerabilities found in IMAGE (REPOSITORY:TAG or REPOSITORY@DIGEST): per platform, the
    fixed version and the layer that introduced each package."""
    name, reference = split_reference(image)
    with local_services(config_file, data_dir, database_url) as services:
        _show(services, name, reference, _wanted(severities, package, include_hidden), as_json)


@scan.command()
@registry_options
@click.argument("image")
@click.option(
    "--wait",
    type=click.IntRange(0, 3600),
    default=300,
    show_default=True,
    help="Seconds to wait for the result (scanning here if no server takes the job); 0 only queues it.",
)
@_filter_options
def run(
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    image: str,
    wait: int,
    severities: tuple[str, ...],
    package: str | None,
    include_hidden: bool,
    as_json: bool,
) -> None:
    """Scan IMAGE (REPOSITORY:TAG or REPOSITORY@DIGEST) now, then show the result."""
    name, reference = split_reference(image)
    with local_services(config_file, data_dir, database_url) as services:
        report = services.scans.request_scan(OPERATOR, name, reference)
        click.echo(f"queued a scan of {name}@{report.digest}", err=True)
        if not wait:
            return
        deadline = time.monotonic() + wait
        while report.status in _BUSY:
            if time.monotonic() > deadline:
                raise click.ClickException(f"the scan is still {report.status} after {wait} s")
            if not services.scans.run_pending(1):
                time.sleep(0.5)  # a server's scanner holds the job: wait for it
            report = services.scans.report(OPERATOR, name, report.digest)
        _show(services, name, report.digest, _wanted(severities, package, include_hidden), as_json)
