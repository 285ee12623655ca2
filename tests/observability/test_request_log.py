"""Request ids and the access log: one line per request, with the id the client got back."""

from __future__ import annotations

import json
import logging
import re

import pytest
from observability_support import ADMIN_PASSWORD, AppFactory

from dockyard.observability.logs import JsonFormatter, RequestIdFilter, TextFormatter

GENERATED = re.compile(r"[0-9a-f]{32}")


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dockyard.access"]


def test_every_response_carries_a_fresh_request_id(make_client: AppFactory) -> None:
    client = make_client()
    seen = set()
    for path in ("/v2/", "/_ping", "/v2/a/b/manifests/c", "/nowhere", "/api/v1/repositories"):
        request_id = client.get(path).headers["x-request-id"]
        assert GENERATED.fullmatch(request_id)
        seen.add(request_id)
    assert len(seen) == 5


def test_incoming_request_id_is_ignored_unless_trusted(make_client: AppFactory) -> None:
    client = make_client()
    assert client.get("/_ping", headers={"X-Request-ID": "from-the-client-1"}).headers["x-request-id"] != (
        "from-the-client-1"
    )


@pytest.mark.parametrize(
    "sent",
    [
        "a" * 129,  # too long
        "",  # empty
        "-starts-with-dash",
        "has space",
        "new\tline",
        'quote"d',
        "semi;colon",
        "unicode-é",
        "percent%0aencoded",
    ],
)
def test_malformed_incoming_request_id_is_replaced(make_client: AppFactory, sent: str) -> None:
    client = make_client(trust_request_id=True)
    got = client.get("/_ping", headers=[("X-Request-ID", sent.encode("utf-8"))]).headers["x-request-id"]
    assert GENERATED.fullmatch(got)


def test_two_incoming_request_ids_are_replaced(make_client: AppFactory) -> None:
    client = make_client(trust_request_id=True)
    got = client.get("/_ping", headers=[("X-Request-ID", "one-id"), ("X-Request-ID", "two-id")])
    assert GENERATED.fullmatch(got.headers["x-request-id"])


@pytest.mark.parametrize("sent", ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "lb:12.34_x", "a" * 128])
def test_trusted_well_formed_request_id_is_kept(make_client: AppFactory, sent: str) -> None:
    client = make_client(trust_request_id=True)
    assert client.get("/_ping", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent


def test_one_access_line_per_request_with_its_fields(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    caplog.set_level(logging.INFO, logger="dockyard.access")
    caplog.clear()
    answer = client.get("/v2/team/app/manifests/v1")
    records = access_records(caplog)
    assert len(records) == 1
    fields = records[0].access  # type: ignore[attr-defined]
    assert fields["method"] == "GET"
    assert fields["path"] == "/v2/team/app/manifests/v1"
    assert fields["route"] == "/v2/{name}/manifests/{reference}"
    assert fields["status"] == 401
    assert fields["bytes_out"] == len(answer.content)
    assert fields["duration_ms"] >= 0
    assert fields["user"] == "-"
    assert fields["request_id"] == answer.headers["x-request-id"]
    line = records[0].getMessage()
    for part in ("GET /v2/team/app/manifests/v1", " 401 ", answer.headers["x-request-id"], "route="):
        assert part in line


def test_access_line_names_the_user(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client()
    caplog.set_level(logging.INFO, logger="dockyard.access")
    token = client.get("/auth/token", params={"service": "dockyard"}, auth=("admin", ADMIN_PASSWORD))
    assert token.status_code == 200
    api = client.get("/api/v1/users/me", auth=("admin", ADMIN_PASSWORD))
    registry = client.get("/v2/", headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert registry.status_code == 200
    users = {r.access["request_id"]: r.access["user"] for r in access_records(caplog)}  # type: ignore[attr-defined]
    assert users[token.headers["x-request-id"]] == "admin"
    assert users[api.headers["x-request-id"]] == "admin"
    assert users[registry.headers["x-request-id"]] == "admin"


def test_access_log_can_be_turned_off(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(access_log=False)
    caplog.set_level(logging.INFO, logger="dockyard.access")
    caplog.clear()
    client.get("/_ping")
    assert not access_records(caplog)


def test_logged_path_is_bounded_and_on_one_line(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    caplog.set_level(logging.INFO, logger="dockyard.access")
    caplog.clear()
    client.get("/v2/" + "a" * 5000 + "%0d%0aFAKE 200 line/manifests/x")
    (record,) = access_records(caplog)
    assert len(record.access["path"]) <= 512  # type: ignore[attr-defined]
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage()


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("dockyard.test", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_request_id_and_access_fields() -> None:
    access = {"method": "GET", "route": "/v2/", "status": 200, "request_id": "r1", "user": "bob"}
    line = JsonFormatter().format(_record("served", request_id="r1", access=access))
    entry = json.loads(line)
    assert entry["message"] == "served" and entry["level"] == "warning" and entry["logger"] == "dockyard.test"
    assert entry["request_id"] == "r1" and entry["route"] == "/v2/" and entry["user"] == "bob"
    assert entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_json_lines_keep_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "boom" in json.loads(line)["exception"]


def test_text_lines_name_the_request_outside_the_access_log() -> None:
    record = _record("something happened")
    RequestIdFilter().filter(record)  # outside a request: no id
    assert "[request" not in TextFormatter().format(record)
    assert TextFormatter().format(_record("inside", request_id="abc123")).endswith("[request abc123]")
