"""Schemathesis against the served OpenAPI document: whatever it sends, the API answers without a server error,
and every answer it documents has the documented shape.

The server runs with no daemon, so generated commands are stored and never run.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from .conftest import LiveServer

EXAMPLES = 25  # per operation and token; `bench/` is the place for long fuzzing runs


def test_no_server_errors_for_any_operation(live_api: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    ops = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the document does not describe readably
        ops.append(result.ok())
    assert len(ops) >= 18  # every endpoint is in the document
    tokens = [live_api.plane.admin_token, live_api.plane.tokens["lab-a"]]
    for op in ops:
        for token in tokens:
            _fuzz(op, token)


def _fuzz(op, token: str) -> None:
    @given(case=op.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    check()
