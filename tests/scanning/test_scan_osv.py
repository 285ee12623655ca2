"""OSV parsing and the streaming readers, on the real Go and PyPI snapshots and on hand-made feeds."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.scanning.errors import AdvisoryFormatError, ScanError
from dockyard.scanning.osv import Event, iter_zip, parse_advisory, read_advisories


def _raw_records(path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(archive.read(n)) for n in archive.namelist() if n.endswith(".json")]


def _record(vuln_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": vuln_id,
        "modified": "2024-01-02T03:04:05Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}],
            }
        ],
        **extra,
    }


@pytest.mark.parametrize("name", ["Go.zip", "PyPI.zip"])
def test_real_zip_yields_every_live_record(osv_dir: Path, name: str) -> None:
    raw = _raw_records(osv_dir / name)
    expected = {r["id"] for r in raw if not r.get("withdrawn")}
    advisories = list(read_advisories(osv_dir / name))
    assert {a.id for a in advisories} == expected
    assert len(advisories) == len(expected)
    by_id = {r["id"]: r for r in raw}
    for advisory in advisories[:200]:
        source = by_id[advisory.id]
        assert advisory.aliases == tuple(source.get("aliases", []))
        assert len(advisory.affected) == len(source.get("affected", []))
        for parsed, original in zip(advisory.affected, source.get("affected", []), strict=True):
            assert parsed.package.name == original["package"]["name"]
            assert parsed.versions == tuple(original.get("versions", []))
            assert [r.type for r in parsed.ranges] == [r["type"] for r in original.get("ranges", [])]
            assert parsed.ecosystem_specific == original.get("ecosystem_specific")
        assert (advisory.published is None) == ("published" not in source)


def test_pypi_records_keep_git_ranges_and_versions(osv_dir: Path) -> None:
    advisories = list(iter_zip(osv_dir / "PyPI.zip"))
    with_git = [a for a in advisories if any(r.type == "GIT" for af in a.affected for r in af.ranges)]
    assert with_git, "the PYSEC snapshot has GIT ranges"
    assert any(af.versions for a in with_git for af in a.affected)
    git_range = next(r for a in with_git for af in a.affected for r in af.ranges if r.type == "GIT")
    assert git_range.repo and git_range.events[0].kind == "introduced"
    # Read by hand from PYSEC-2019-133: published 2019-04-18T21:29:00Z, modified 2019-09-14T18:15:00Z.
    record = next(a for a in advisories if a.id == "PYSEC-2019-133")
    assert record.published is not None and record.published.isoformat() == "2019-04-18T21:29:00+00:00"
    assert record.modified is not None and record.modified.isoformat() == "2019-09-14T18:15:00+00:00"


def test_directory_and_list_file_and_single_file(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    (feed / "sub").mkdir(parents=True)
    (feed / "A-1.json").write_text(json.dumps(_record("A-1")))
    (feed / "sub" / "A-2.json").write_text(json.dumps(_record("A-2", withdrawn="2024-02-01T00:00:00Z")))
    (feed / "notes.txt").write_text("not a record")
    assert [a.id for a in read_advisories(feed)] == ["A-1"]
    assert [a.id for a in read_advisories(feed, include_withdrawn=True)] == ["A-1", "A-2"]

    records = [_record(f"L-{i}", severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]) for i in range(50)]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(records, indent=2))
    parsed = list(read_advisories(listing))
    assert [a.id for a in parsed] == [f"L-{i}" for i in range(50)]
    assert parsed[0].affected[0].ranges[0].events == (Event("introduced", "0"), Event("fixed", "1.2"))
    assert parsed[0].severity[0].type == "CVSS_V3"
    assert parsed[0].modified is not None and parsed[0].modified.year == 2024

    single = tmp_path / "one.json"
    single.write_text(json.dumps(_record("S-1")))
    assert [a.id for a in read_advisories(single)] == ["S-1"]


def test_list_reader_stops_at_the_record_limit(tmp_path: Path) -> None:
    big = _record("BIG", details="x" * 200_000)
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([_record("SMALL"), big]))
    reader = read_advisories(listing, max_record_bytes=100_000)
    assert next(reader).id == "SMALL"
    with pytest.raises(AdvisoryFormatError, match="larger than"):
        next(reader)


@pytest.mark.parametrize(
    "content",
    [
        '[{"id": "X"}, ',
        '{"id": "X"} {"id": "Y"}',
        '{"id": 5}',
        '{"id": "X", "affected": [{"package": {}}]}',
        '{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"bogus": "1"}]}]}]}',
        '{"id": "X", "modified": "yesterday"}',
        "[1, 2]",
        '[{"id": "A"} {"id": "B"}]',
        '[, {"id": "A"}]',
    ],
)
def test_malformed_json_files_raise_scan_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ScanError):
        list(read_advisories(path))


def test_corrupt_and_oversized_zip_members(tmp_path: Path) -> None:
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ok.json", json.dumps(_record("OK")))
        archive.writestr("big.json", json.dumps(_record("BIG", details="y" * 50_000)))
    reader = iter_zip(path, max_record_bytes=10_000)
    assert next(reader).id == "OK"
    with pytest.raises(AdvisoryFormatError, match=r"big\.json"):
        next(reader)
    with pytest.raises(AdvisoryFormatError):
        parse_advisory(["not", "an", "object"])
