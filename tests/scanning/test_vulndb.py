"""The vulnerability database on SQLite and PostgreSQL, with the real Go advisories of `Go.zip`.

Go.zip is imported once per backend per module; tests that change records use an id of their own so
the others see the import as it was.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from advisories import URLLIB3_GHSA, URLLIB3_PYSEC_ID
from alembic import command
from alembic.config import Config
from click.testing import CliRunner
from scan_support import OSV_DIR
from sqlalchemy import delete, func, select

from dockyard.cli import main
from dockyard.db.engine import MIGRATIONS, Database
from dockyard.db.schema import advisory_keys
from dockyard.scanning.match import AdvisoryIndex, index_keys, match_packages
from dockyard.scanning.osv import Advisory, parse_advisory, read_advisories
from dockyard.scanning.packages import Package
from dockyard.scanning.vulndb import ImportReport, VulnDatabase, advisory_json
from support import PostgresServer

GO_ZIP = OSV_DIR / "Go.zip"
TEST_ID = "DOCKYARD-TEST-0001"


@pytest.fixture(scope="module")
def go_advisories() -> list[Advisory]:
    """The live (not withdrawn) records of Go.zip."""
    return list(read_advisories(GO_ZIP))


@pytest.fixture(scope="module")
def go_index(go_advisories: list[Advisory]) -> AdvisoryIndex:
    """Go.zip in memory, the reference the database must agree with."""
    return AdvisoryIndex(go_advisories)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty metadata database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('vulndb') / 'dockyard.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture(scope="module")
def imported(database_url: str) -> Iterator[tuple[VulnDatabase, ImportReport, list[int]]]:
    """Go.zip imported under the source `go`: the database, the report and the progress calls."""
    db = Database(database_url)
    db.migrate()
    calls: list[int] = []
    vulndb = VulnDatabase(db)
    report = vulndb.import_path(GO_ZIP, "go", progress=calls.append)
    try:
        yield vulndb, report, calls
    finally:
        db.close()


def _key_rows(vulndb: VulnDatabase) -> int:
    with vulndb.db.read() as conn:
        count: int = conn.execute(select(func.count()).select_from(advisory_keys)).scalar_one()
    return count


def test_import_stores_every_live_record(
    imported: tuple[VulnDatabase, ImportReport, list[int]], go_advisories: list[Advisory]
) -> None:
    vulndb, report, calls = imported
    assert report.added == len(go_advisories)
    assert report.updated == report.unchanged == report.withdrawn_removed == 0
    assert sum(calls) == report.total >= len(go_advisories)
    # Batched: more than one transaction, none larger than the batch size.
    assert len(calls) > 1 and max(calls) <= vulndb.batch_size
    status = vulndb.status()
    assert status.sources == {"go": len(go_advisories)}
    assert status.total == len(go_advisories)
    assert status.last_import_at is not None
    assert _key_rows(vulndb) == sum(len(index_keys(a)) for a in go_advisories)


def test_reimport_changes_nothing(
    imported: tuple[VulnDatabase, ImportReport, list[int]], go_advisories: list[Advisory]
) -> None:
    vulndb, first, _ = imported
    before = vulndb.status()
    again = vulndb.import_path(GO_ZIP, "go")
    assert (again.added, again.updated, again.withdrawn_removed) == (0, 0, 0)
    assert again.unchanged == len(go_advisories)
    assert again.total == first.total
    after = vulndb.status()
    assert after.sources == before.sources
    assert after.last_import_at is not None and before.last_import_at is not None
    assert after.last_import_at >= before.last_import_at
    assert _key_rows(vulndb) == sum(len(index_keys(a)) for a in go_advisories)


def test_json_round_trip(go_advisories: list[Advisory]) -> None:
    for advisory in go_advisories:
        assert parse_advisory(json.loads(advisory_json(advisory))) == advisory


def _raw_record(go_advisories: list[Advisory]) -> dict[str, Any]:
    """A real record of Go.zip as its JSON, under an id of our own."""
    name = next(n for n in zipfile.ZipFile(GO_ZIP).namelist() if n.endswith(f"{go_advisories[0].id}.json"))
    record: dict[str, Any] = json.loads(zipfile.ZipFile(GO_ZIP).read(name))
    record["id"] = TEST_ID
    return record


def test_modified_record_updates_and_withdrawn_removes(
    imported: tuple[VulnDatabase, ImportReport, list[int]],
    go_advisories: list[Advisory],
    tmp_path: Path,
) -> None:
    vulndb, _, _ = imported
    record = _raw_record(go_advisories)
    ecosystem, name = sorted(index_keys(parse_advisory(record)))[0]
    file = tmp_path / "record.json"

    file.write_text(json.dumps(record))
    report = vulndb.import_path(file, "go")
    assert (report.added, report.updated, report.total) == (1, 0, 1)

    record["modified"] = "2099-01-01T00:00:00Z"
    record["summary"] = "A changed summary"
    file.write_text(json.dumps(record))
    report = vulndb.import_path(file, "go")
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    stored = next(a for a in vulndb.lookup(ecosystem, name) if a.id == TEST_ID)
    assert stored.summary == "A changed summary"
    assert vulndb.status().sources == {"go": len(go_advisories) + 1}

    record["withdrawn"] = "2099-01-02T00:00:00Z"
    file.write_text(json.dumps([record]))
    report = vulndb.import_path(file, "go")
    assert (report.added, report.updated, report.withdrawn_removed) == (0, 0, 1)
    assert TEST_ID not in {a.id for a in vulndb.lookup(ecosystem, name)}
    assert vulndb.status().sources == {"go": len(go_advisories)}


def test_lookup_agrees_with_the_in_memory_index(
    imported: tuple[VulnDatabase, ImportReport, list[int]], go_index: AdvisoryIndex
) -> None:
    vulndb, _, _ = imported
    keys = [("Go", "stdlib"), ("Go", "golang.org/x/net"), ("Go", "golang.org/x/crypto"), ("Go", "no/such")]
    for ecosystem, name in keys:
        expected = sorted(go_index.lookup(ecosystem, name), key=lambda a: a.id)
        assert vulndb.lookup(ecosystem, name) == expected
    assert vulndb.lookup("Go", "stdlib")
    assert vulndb.lookup("PyPI", "stdlib") == []


def test_matching_over_the_database_equals_matching_in_memory(
    imported: tuple[VulnDatabase, ImportReport, list[int]], go_index: AdvisoryIndex
) -> None:
    vulndb, _, _ = imported
    stdlib = Package("Go", "stdlib", "1.19.8", "stdlib", "1.19.8", "/usr/local/bin/app", "sha256:aa")
    expected = match_packages([stdlib], None, go_index)
    assert expected
    assert match_packages([stdlib], None, vulndb) == expected


def test_cli_import_and_status(
    database_url: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    go_advisories: list[Advisory],
) -> None:
    record = _raw_record(go_advisories)
    file = tmp_path / "one.json"
    file.write_text(json.dumps(record))
    # A database of its own, on the backend of this module's run.
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'cli.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    common = ["--data-dir", str(tmp_path / "data"), "--database-url", url]
    runner = CliRunner()

    # The first command makes the registry's database, which needs --init.
    result = runner.invoke(main, ["vulndb", "import", *common, "--init", "--source", "extra", str(file)])
    assert result.exit_code == 0, result.output
    assert "1 records read, 1 added, 0 updated, 0 unchanged, 0 withdrawn removed" in result.output

    record["withdrawn"] = "2099-01-02T00:00:00Z"
    file.write_text(json.dumps(record))
    result = runner.invoke(main, ["vulndb", "import", *common, "--source", "extra", str(file)])
    assert result.exit_code == 0, result.output
    assert "1 withdrawn removed" in result.output

    result = runner.invoke(main, ["vulndb", "status", *common])
    assert result.exit_code == 0, result.output
    assert "total 0 advisories, last import 20" in result.output

    file.write_text(json.dumps(_raw_record(go_advisories)))
    assert runner.invoke(main, ["vulndb", "import", *common, str(file)]).exit_code == 0
    result = runner.invoke(main, ["vulndb", "status", *common])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "one 1"

    # osv.dev's `<Ecosystem>/all.zip` is named after its ecosystem.
    (tmp_path / "Go").mkdir()
    with zipfile.ZipFile(tmp_path / "Go" / "all.zip", "w") as archive:
        archive.writestr(f"{TEST_ID}.json", json.dumps(_raw_record(go_advisories)))
    assert runner.invoke(main, ["vulndb", "import", *common, str(tmp_path / "Go" / "all.zip")]).exit_code == 0
    result = runner.invoke(main, ["vulndb", "status", *common])
    assert result.output.splitlines()[0] == "Go 1"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_severity_from_aliases_over_the_database_and_after_upgrading(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    db = Database(url)
    try:
        # The schema as revision 0004 left it; records imported then had no keys for their ids.
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
            conn.commit()
        pysec = next(r for r in _zip_records(OSV_DIR / "PyPI.zip") if r["id"] == URLLIB3_PYSEC_ID)
        feed = tmp_path / "feed.json"
        feed.write_text(json.dumps([pysec, URLLIB3_GHSA]))
        vulndb = VulnDatabase(db)
        vulndb.import_path(feed, "pypi")
        urllib3 = Package("PyPI", "urllib3", "1.26.4", "urllib3", "1.26.4", "/m", "sha256:aa")
        found = {f.vuln_id: (f.severity, f.score) for f in match_packages([urllib3], None, vulndb)}
        assert found == {URLLIB3_PYSEC_ID: ("MEDIUM", 5.9), "GHSA-q2q7-5pp4-w6pg": ("MEDIUM", 5.9)}

        with db.write() as conn:
            conn.execute(delete(advisory_keys).where(advisory_keys.c.ecosystem == ""))
        found = {f.vuln_id: f.severity for f in match_packages([urllib3], None, vulndb)}
        assert found[URLLIB3_PYSEC_ID] == "UNKNOWN"
        # Upgrading keys the stored records by their ids; re-importing the same text would not.
        vulndb.import_path(feed, "pypi")
        assert {f.vuln_id: f.severity for f in match_packages([urllib3], None, vulndb)} == found
        db.migrate()
        found = {f.vuln_id: f.severity for f in match_packages([urllib3], None, vulndb)}
        assert found == {URLLIB3_PYSEC_ID: "MEDIUM", "GHSA-q2q7-5pp4-w6pg": "MEDIUM"}
        with db.read() as conn:
            ids = conn.execute(
                select(advisory_keys.c.name).where(
                    advisory_keys.c.ecosystem == "", advisory_keys.c.advisory_id == URLLIB3_PYSEC_ID
                )
            ).scalars()
            assert set(ids) == {URLLIB3_PYSEC_ID, *pysec["aliases"]}
    finally:
        db.close()


def _zip_records(path: Path) -> Iterator[dict[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".json"):
                yield json.loads(archive.read(name))
