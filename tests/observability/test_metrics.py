"""/metrics: what it counts, that its labels never carry names, and who may read it."""

from __future__ import annotations

import hashlib

import pytest
from observability_support import AppFactory
from prometheus_client.parser import text_string_to_metric_families

from dockyard.config import ConfigError, load_settings
from dockyard.observability import metrics

SECRETS = ("secret-team", "hidden-app", "classified", "0123456789abcdef")
DIGEST = "sha256:" + "0123456789abcdef" * 4


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def requests_counted(text: str, method: str, route: str, status: str) -> float:
    """dockyard_http_request_duration_seconds_count for these labels (0 when absent)."""
    key = frozenset({("method", method), ("route", route), ("status", status)})
    return samples(text).get(("dockyard_http_request_duration_seconds_count", key), 0.0)


def test_requests_are_counted_by_route_template(make_client: AppFactory) -> None:
    client = make_client()
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.get("/v2/some/repo/manifests/latest").status_code == 401
    client.get("/_ping")
    after = client.get("/metrics").text
    route = "/v2/{name}/manifests/{reference}"
    assert requests_counted(after, "GET", route, "401") - requests_counted(before, "GET", route, "401") == 3
    assert requests_counted(after, "GET", "/_ping", "200") >= 1


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/v2/secret-team/hidden-app/manifests/classified", "/v2/{name}/manifests/{reference}"),
        ("HEAD", "/v2/secret-team/hidden-app/manifests/classified", "/v2/{name}/manifests/{reference}"),
        ("GET", f"/v2/secret-team/hidden-app/blobs/{DIGEST}", "/v2/{name}/blobs/{digest}"),
        ("POST", "/v2/secret-team/hidden-app/blobs/uploads/", "/v2/{name}/blobs/uploads/"),
        ("PATCH", "/v2/secret-team/hidden-app/blobs/uploads/classified", "/v2/{name}/blobs/uploads/{id}"),
        ("GET", "/v2/secret-team/hidden-app/tags/list", "/v2/{name}/tags/list"),
        ("GET", f"/v2/secret-team/hidden-app/referrers/{DIGEST}", "/v2/{name}/referrers/{digest}"),
        ("GET", "/v2/secret-team/hidden-app/classified", "unmatched"),
        ("GET", "/secret-team/hidden-app", "unmatched"),
        ("GET", "/api/v1/repositories/secret-team/hidden-app", "/api/v1/repositories/{name:path}"),
        ("GET", "/api/v1/secret-team/classified", "unmatched"),
    ],
)  # fmt: skip
def test_labels_never_carry_names_or_digests(
    make_client: AppFactory, method: str, path: str, route: str
) -> None:
    client = make_client()
    client.request(method, path)
    text = client.get("/metrics").text
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into /metrics"
    assert f'route="{route}"' in text


def test_unknown_methods_share_one_label(make_client: AppFactory) -> None:
    client = make_client()
    for method in ("FOO", "BAR", "PROPFIND"):
        client.request(method, "/v2/")
    text = client.get("/metrics").text
    for method in ("FOO", "BAR", "PROPFIND"):
        assert f'method="{method}"' not in text
    assert 'method="other"' in text


def test_bytes_in_and_out_are_counted(make_client: AppFactory) -> None:
    client = make_client(open_access=True)
    body = b"x" * 12345
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    location = client.post("/v2/team/app/blobs/uploads/").headers["location"]
    assert client.put(location, params={"digest": digest}, content=body).status_code == 201
    got = client.get(f"/v2/team/app/blobs/{digest}")
    assert got.content == body
    found = samples(client.get("/metrics").text)
    upload = frozenset({("route", "/v2/{name}/blobs/uploads/{id}")})
    blob = frozenset({("route", "/v2/{name}/blobs/{digest}")})
    assert found[("dockyard_http_request_bytes_total", upload)] >= len(body)
    assert found[("dockyard_http_response_bytes_total", blob)] >= len(body)


def test_blob_totals_come_from_the_database(make_client: AppFactory) -> None:
    client = make_client(open_access=True)
    sizes = (100, 2000, 30000)
    for size in sizes:
        body = bytes([size % 251]) * size
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        location = client.post("/v2/team/app/blobs/uploads/").headers["location"]
        assert client.put(location, params={"digest": digest}, content=body).status_code == 201
    client.post("/v2/team/app/blobs/uploads/")  # left open
    found = samples(client.get("/metrics").text)
    assert found[("dockyard_blobs", frozenset())] == len(sizes)
    assert found[("dockyard_blob_store_bytes", frozenset())] == sum(sizes)
    assert found[("dockyard_uploads_in_progress", frozenset())] == 1
    assert ("dockyard_jobs", frozenset({("state", "queued")})) in found


def test_login_hooks_count(make_client: AppFactory) -> None:
    client = make_client()
    before = samples(client.get("/metrics").text)
    metrics.login_failed()
    metrics.login_failed()
    metrics.login_throttled()
    after = samples(client.get("/metrics").text)
    key = ("dockyard_login_failures_total", frozenset())
    assert after[key] - before[key] == 2
    key = ("dockyard_login_throttled_total", frozenset())
    assert after[key] - before[key] == 1


def test_gc_and_job_hooks_count(make_client: AppFactory) -> None:
    client = make_client()
    before = samples(client.get("/metrics").text)
    metrics.gc_finished(4096)
    metrics.gc_finished(0, ok=False)
    metrics.job_finished("scan", 1.5, ok=True)
    metrics.job_finished("scan", 0.2, ok=False)
    after = samples(client.get("/metrics").text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("dockyard_gc_freed_bytes_total") == 4096
    # The app's own collector may also finish a (successful, empty) run meanwhile: at least ours counts.
    assert grew("dockyard_gc_runs_total", outcome="ok") >= 1
    assert grew("dockyard_gc_runs_total", outcome="failed") == 1
    assert grew("dockyard_job_duration_seconds_count", kind="scan", outcome="ok") == 1
    assert grew("dockyard_job_duration_seconds_count", kind="scan", outcome="failed") == 1
    assert grew("dockyard_job_failures_total", kind="scan") == 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer wrong-token-of-some-length",
        "Bearer metrics-token-0123456789",  # the token with a suffix missing
        "Basic " + "YWRtaW46b2JzZXJ2YWJpbGl0eS1hZG1pbg==",  # admin's password is not the metrics token
        "bearer metrics-token-0123456789ab",
    ],
)
def test_metrics_token_is_required_when_set(make_client: AppFactory, header: str | None) -> None:
    client = make_client(metrics_token="metrics-token-0123456789ab")
    headers = {"Authorization": header} if header else {}
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "dockyard_" not in answer.text
    good = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789ab"})
    assert good.status_code == 200 and "dockyard_http_request_duration_seconds" in good.text


def test_metrics_can_be_turned_off(make_client: AppFactory) -> None:
    client = make_client(metrics_enabled=False)
    assert client.get("/metrics").status_code == 404


def test_short_metrics_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="metrics_token"):
        load_settings(metrics_token="short")
