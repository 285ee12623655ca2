"""GET and PUT /system/settings: settings administrators change at run time (the scan-on-push default of
new repositories). The rules live in dockyard.content.system_settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, StrictBool

from dockyard.api.deps import User
from dockyard.api.errors import documented
from dockyard.api.models import Timestamp
from dockyard.auth.authenticate import client_address
from dockyard.content.system_settings import SystemSettings, SystemSettingsView

router = APIRouter(tags=["system"], responses=documented())


def system_settings(request: Request) -> SystemSettings:
    """The system settings service."""
    found: SystemSettings = request.app.state.system_settings
    return found


Settings = Annotated[SystemSettings, Depends(system_settings)]


class SystemSettingsIn(BaseModel):
    """Settings to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    scan_on_push_default: StrictBool | None = None


class SystemSettingsOut(BaseModel):
    """The settings in force, and the last change."""

    scan_on_push_default: bool
    updated_at: Timestamp | None
    updated_by: str | None


def _out(view: SystemSettingsView) -> SystemSettingsOut:
    return SystemSettingsOut(
        scan_on_push_default=view.scan_on_push_default,
        updated_at=datetime.fromtimestamp(view.updated_at, UTC) if view.updated_at is not None else None,
        updated_by=view.updated_by,
    )


@router.get("/system/settings", response_model=SystemSettingsOut, responses=documented(403))
def get_system_settings(settings: Settings, identity: User) -> SystemSettingsOut:
    """The system settings (system administrators)."""
    return _out(settings.get(identity))


@router.put("/system/settings", response_model=SystemSettingsOut, responses=documented(403, 422))
def put_system_settings(
    body: SystemSettingsIn, request: Request, settings: Settings, identity: User
) -> SystemSettingsOut:
    """Change system settings (system administrators); recorded in the audit log as system.settings."""
    return _out(
        settings.update(
            identity, scan_on_push_default=body.scan_on_push_default, address=client_address(request)
        )
    )
