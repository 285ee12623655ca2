"""Events the services record whichever surface asked: a password change refused for a wrong current
password (web UI and API), a signing key rotation (command line and any other caller)."""

from __future__ import annotations

import json
from typing import Any

from auth_support import PASSWORD, SYSTEM, World
from click.testing import CliRunner
from pages_support import post_form, sign_in
from starlette.testclient import TestClient

from dockyard.cli import main

NEW, NEWER = "alice-new-password-1", "alice-newer-password-2"


def _events(world: World, action: str) -> list[tuple[Any, ...]]:
    """The events of `action`, oldest first, without their ids and times."""
    rows = world.auth.audit.events(SYSTEM, action=action, limit=1000)
    return [(r.actor, r.address, r.target, r.outcome, json.loads(r.detail)) for r in reversed(rows)]


def test_a_refused_password_change_is_the_same_failure_from_the_ui_and_the_api(world: World) -> None:
    form = {"new_password": NEW, "repeat_password": NEW}
    with TestClient(world.client.app, raise_server_exceptions=False) as client:
        ui = sign_in(client, "alice", PASSWORD)
        wrong = post_form(ui, "/profile", "/profile/password", {**form, "current_password": "not-hers-1"})
        assert wrong.status_code == 401, wrong.text
        # A session must give the current password; a form without it is refused the same way.
        missing = post_form(ui, "/profile", "/profile/password", form)
        assert missing.status_code == 401, missing.text
        api_wrong = world.client.put(
            "/api/v1/me/password",
            json={"current_password": "not-hers-1", "new_password": NEW},
            auth=("alice", PASSWORD),
        )
        assert api_wrong.status_code == 401, api_wrong.text
        refused = ("alice", "testclient", "alice", "failure", {})
        assert _events(world, "user.password.change") == [refused] * 3
        # Nothing changed: the right current password changes it, a success by either surface.
        right = post_form(ui, "/profile", "/profile/password", {**form, "current_password": PASSWORD})
        assert right.status_code == 303, right.text
    changed = world.client.put(
        "/api/v1/me/password", json={"current_password": NEW, "new_password": NEWER}, auth=("alice", NEW)
    )
    assert changed.status_code == 204, changed.text
    done = ("alice", "testclient", "alice", "success", {})
    assert _events(world, "user.password.change") == [refused] * 3 + [done] * 2


def test_a_key_rotation_is_recorded_by_the_key_ring_for_every_caller(world: World) -> None:
    first = world.auth.keys.current.kid
    cli = CliRunner()
    data_dir = str(world.settings.data_dir)
    rotated = cli.invoke(main, ["admin", "rotate-key", "--data-dir", data_dir])
    assert rotated.exit_code == 0, rotated.output
    second = rotated.output.split()[-1]
    pruned = cli.invoke(main, ["admin", "rotate-key", "--prune", "--data-dir", data_dir])
    assert pruned.exit_code == 0 and "removed 2 older keys" in pruned.output, pruned.output
    third = pruned.output.split(";")[0].split()[-1]
    by_hand = world.auth.keys.rotate(SYSTEM)
    assert len({first, second, third, by_hand.key.kid}) == 4
    events = _events(world, "key.rotate")
    assert [(actor, target, outcome) for actor, _, target, outcome, _ in events] == [
        ("cli", second, "success"),
        ("cli", third, "success"),
        (SYSTEM.name, by_hand.key.kid, "success"),
    ]
    # Each names the keys it deleted: the ones --prune removed, which no longer verify anything.
    assert [sorted(detail["pruned"]) for *_, detail in events] == [[], sorted([first, second]), []]
    assert world.auth.keys.public_key(first) is None
