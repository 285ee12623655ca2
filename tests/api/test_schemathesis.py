"""Fuzz /api/v1 from its own OpenAPI schema (schemathesis): valid and invalid requests to every operation, as
an administrator and anonymously; no request gets a 5xx, and every status answered is one the schema
declares for that operation. Bounded: a few examples per operation and mode, derandomized, no deadline (the
machine is shared); the data directory is thrown away after."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import schemathesis
from auth_support import ADMIN_PASSWORD, AppFactory
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

EXAMPLES = 5
CALLERS = {
    "administrator": {
        "Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    },
    "anonymous": {},
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_no_server_error_and_every_status_declared(make_world: AppFactory, caller: str) -> None:
    world = make_world()
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.client.app)
    headers = CALLERS[caller]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case: Any) -> None:
                response = case.call(headers=headers)
                case.validate_response(
                    response, checks=[not_a_server_error, status_code_conformance], headers=headers
                )

            try:
                run()
            except Unsatisfiable:
                pass  # no invalid request exists: the only inputs are free-form path segments
            except Exception as exc:  # every operation's failure, not only the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
