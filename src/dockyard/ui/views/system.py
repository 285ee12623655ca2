"""System pages for administrators: health, job queue, vulnerability database (status and upload),
garbage collection (dry run and run), and the audit log with filters and paging."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth import policy as p
from dockyard.auth.authenticate import client_address
from dockyard.auth.errors import Conflict, Forbidden, InvalidInput, NotFound
from dockyard.registry.numbers import parse_count
from dockyard.scanning.errors import ScanError
from dockyard.ui.render import page
from dockyard.ui.session import Viewer, check_form, viewer
from dockyard.ui.views.common import back, call, notice, posted, services, signed_in

AUDIT_PAGE = 50
# A digest nobody stores: reading its size proves the blob store answers, without writing.
_PROBE = "sha256:" + "0" * 64


def _administrator(current: Viewer) -> None:
    signed_in(current)
    if not p.may_administer(current.identity):
        raise Forbidden("only system administrators may see this page")


def _health(request: Request) -> dict[str, str]:
    svc = services(request)

    def blob_store() -> None:
        svc.store.size(_PROBE)

    probes: dict[str, Callable[[], None]] = {"database": svc.db.ping, "blob store": blob_store}
    checks: dict[str, str] = {}
    for part, probe in probes.items():
        try:
            probe()
            checks[part] = "ok"
        except Exception as exc:
            checks[part] = f"failing: {type(exc).__name__}"
    return checks


async def _system_page(request: Request, current: Viewer, status: int = 200, **extra: Any) -> Response:
    svc = services(request)
    vulndb, sync = await call(svc.vulndb_sync.status)
    return page(
        request,
        current,
        "system.html",
        status=status,
        health=await call(_health, request),
        jobs=sorted((await call(svc.browser.job_counts, current.identity)).items()),
        vulndb=vulndb,
        sync=sync,
        max_upload=svc.settings.vulndb_max_upload_bytes,
        caches=await call(svc.caches.all),
        system_settings=await call(svc.system_settings.get, current.identity),
        last_gc=await call(svc.gc.last, current.identity),
        notice=notice(request),
        **extra,
    )


async def system(request: Request) -> Response:
    """GET /system."""
    current = await viewer(request)
    _administrator(current)
    return await _system_page(request, current)


async def collect_garbage(request: Request) -> Response:
    """POST /system/gc: a dry run, or a collection."""
    form = await posted(request)
    _administrator(form.viewer)
    dry_run = form.get("mode") != "run"
    report = await call(services(request).gc.run_by, form.viewer.identity, dry_run)
    return await _system_page(request, form.viewer, gc=report)


async def import_advisories(request: Request) -> Response:
    """POST /system/vulndb: an OSV zip or JSON file uploaded from the browser."""
    current = await viewer(request)
    _administrator(current)
    limit = services(request).settings.vulndb_max_upload_bytes
    length = request.headers.get("content-length", "")
    size = parse_count(length)
    if size is None or size > limit + 64 * 1024:
        raise InvalidInput(f"the file is over the limit of {limit} bytes", "file")
    data = await request.form(max_files=1, max_fields=4)
    token = data.get("csrf_token")
    check_form(request, current, token if isinstance(token, str) else "")
    upload = data.get("file")
    source = data.get("source")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("choose an OSV zip or JSON file", "file")
    try:
        name, report = await call(
            services(request).vulndb_sync.import_upload,
            current.identity,
            upload.file,
            upload.filename,
            source if isinstance(source, str) and source.strip() else None,
        )
    except ScanError as exc:
        return await _system_page(request, current, status=422, error=f"not an OSV file: {exc}")
    finally:
        await upload.close()
    return await _system_page(request, current, imported=(name, report))


def _moment(params: Mapping[str, str], field: str) -> float | None:
    """A datetime-local value (YYYY-MM-DDTHH:MM[:SS], read as UTC) as seconds since the epoch."""
    value = params.get(field, "").strip()
    if not value:
        return None
    try:
        if len(value) > 32:
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("give a date and time such as 2026-12-01T13:30", field) from None
    if moment.tzinfo is not None:
        raise InvalidInput("give the time in UTC, without a zone", field)
    return moment.replace(tzinfo=UTC).timestamp()


async def audit_log(request: Request) -> Response:
    """GET /system/audit: events newest first, filtered by actor, action, repository and time range (UTC),
    paged by id."""
    current = await viewer(request)
    _administrator(current)
    params = request.query_params
    filters = {field: params.get(field, "")[:64] for field in ("actor", "action", "repository")}
    filters |= {field: params.get(field, "")[:32] for field in ("from", "to")}
    before = params.get("before", "")
    rows = await call(
        services(request).auth.audit.events,
        current.identity,
        limit=AUDIT_PAGE + 1,
        before_id=parse_count(before),
        action=filters["action"] or None,
        who=filters["actor"] or None,
        since=_moment(params, "from"),
        until=_moment(params, "to"),
        repository=filters["repository"] or None,
    )
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return page(
        request,
        current,
        "audit.html",
        events=rows,
        filters={key: value for key, value in filters.items() if value},
        shown=filters,
        next_before=rows[-1].id if more and rows else None,
    )


async def save_settings(request: Request) -> Response:
    """POST /system/settings: the scan-on-push default of new repositories."""
    form = await posted(request)
    _administrator(form.viewer)
    await call(
        services(request).system_settings.update,
        form.viewer.identity,
        scan_on_push_default=form.get("scan_on_push_default") == "on",
        address=client_address(request),
    )
    return back("/system", "saved")


async def manage_caches(request: Request) -> Response:
    """POST /system/caches: register a content cache, or remove one."""
    form = await posted(request)
    _administrator(form.viewer)
    caches = services(request).caches
    name = form.get("name").strip()
    try:
        if form.get("action") == "remove":
            await call(caches.remove, form.viewer.identity, name)
            return back("/system", "deleted")
        ca_pem = form.get("ca_certificate").strip() or None
        await call(caches.add, form.viewer.identity, name, form.get("url").strip(), ca_pem)
    except (InvalidInput, NotFound, Conflict) as exc:
        return await _system_page(request, form.viewer, status=exc.status, error=exc.message)
    return back("/system", "created")
