"""The vulnerability database routes: its status, and imports of uploaded OSV files by administrators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel

from dockyard.api.deps import Ctx, User
from dockyard.api.errors import documented
from dockyard.api.models import Timestamp
from dockyard.auth.errors import Unprocessable
from dockyard.scanning.errors import ScanError

router = APIRouter(tags=["vulnerability database"], responses=documented())


class SyncOut(BaseModel):
    """The scheduled sync: its URLs and interval, and how its latest run ended."""

    urls: list[str]
    interval_seconds: int
    last_state: str | None
    last_error: str | None
    last_run_at: Timestamp | None


class VulnDbOut(BaseModel):
    """What the vulnerability database holds and how old it is."""

    sources: dict[str, int]
    total: int
    last_import_at: Timestamp | None
    age_seconds: float | None
    sync: SyncOut


class ImportOut(BaseModel):
    """What an import did."""

    source: str
    total: int
    added: int
    updated: int
    unchanged: int
    withdrawn_removed: int


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.get("/vulndb", response_model=VulnDbOut, responses=documented(403))
def vulndb_status(ctx: Ctx, _user: User) -> VulnDbOut:
    """Advisories per source, the last import and its age, and the scheduled sync's state."""
    status, sync = ctx.vulndb.status()
    last = status.last_import_at
    return VulnDbOut(
        sources=status.sources,
        total=status.total,
        last_import_at=_time(last),
        age_seconds=None if last is None else max(0.0, datetime.now(UTC).timestamp() - last),
        sync=SyncOut(
            urls=list(sync.urls),
            interval_seconds=sync.interval_seconds,
            last_state=sync.last_state,
            last_error=sync.last_error,
            last_run_at=_time(sync.last_run_at),
        ),
    )


@router.post("/vulndb/imports", response_model=ImportOut, responses=documented(403, 413))
def import_advisories(
    file: Annotated[UploadFile, File(description="An OSV zip (as osv.dev publishes) or JSON file.")],
    ctx: Ctx,
    identity: User,
    source: Annotated[str | None, Form(min_length=1, max_length=255)] = None,
) -> ImportOut:
    """Import OSV advisories from an uploaded file (system administrators). Importing again is safe."""
    try:
        name, report = ctx.vulndb.import_upload(identity, file.file, file.filename or "upload.json", source)
    except ScanError as exc:
        raise Unprocessable(f"not an OSV file: {exc}", "file") from exc
    return ImportOut(source=name, **report.__dict__)
