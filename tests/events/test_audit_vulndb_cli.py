"""`dockyard vulndb import` is audited by the import service, as the API's import is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auth_support import SYSTEM
from click.testing import CliRunner

from dockyard.app import build_services
from dockyard.cli import main
from dockyard.config import Settings

RECORD = {
    "id": "DOCKYARD-AUDIT-0001",
    "modified": "2024-01-02T03:04:05Z",
    "affected": [
        {
            "package": {"ecosystem": "Go", "name": "example.com/mod"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.3"}]}],
        }
    ],
}


def _imports(data: Path) -> list[tuple[str | None, str | None, str, dict[str, Any]]]:
    services = build_services(Settings(data_dir=data))
    try:
        rows = services.auth.audit.events(SYSTEM, action="vulndb.import")
    finally:
        services.db.close()
    return [(r.actor, r.target, r.outcome, json.loads(r.detail)) for r in rows]


def test_the_cli_import_records_its_outcome(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(RECORD))
    bad = tmp_path / "bad.json"
    bad.write_text("[{not json")
    runner = CliRunner()
    result = runner.invoke(main, ["vulndb", "import", "--data-dir", str(data), "--init", str(good)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["vulndb", "import", "--data-dir", str(data), "--source", "x", str(bad)])
    assert result.exit_code != 0
    failed, imported = _imports(data)
    assert imported[:3] == ("cli", "good", "success")
    assert imported[3]["records"] == 1 and imported[3]["added"] == 1
    assert failed[:3] == ("cli", "x", "failure")
    assert failed[3]["reason"]
