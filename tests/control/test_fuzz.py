"""Schemathesis against the control plane's own OpenAPI document: no 5xx, responses conform.

The server is a real ``clutchcall control`` process. Requests carry a valid API
key (schemathesis also tries them without); path ids are sometimes replaced by
real ones so the deeper code paths (signing, revocation, rotation) get fuzzed too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from control.app import create_app
from control.settings import ControlSettings
from tests.control.server import ControlServer, create_org

_state: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    db = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'control.db'}"
    org = create_org(db)
    server = ControlServer(db, "--auth-failure-limit", "1000000")
    try:
        _state["key"] = org["api_key"]
        _state["base"] = server.base_url
        li = httpx.post(
            f"{server.base_url}/v1/live_inputs",
            json={"name": "seed", "ingest": "fmp4"},
            headers={"Authorization": f"Bearer {org['api_key']}"},
        ).json()["input"]
        _state["input_id"] = li["id"]
        tok = httpx.post(
            f"{server.base_url}/v1/live_inputs/{li['id']}/playback_urls",
            json={"ttl_seconds": 600},
            headers={"Authorization": f"Bearer {org['api_key']}"},
        ).json()
        _state["jti"] = tok["jti"]
        yield server
    finally:
        server.close()


def _document() -> dict[str, Any]:
    """The same document the server serves (checked below), built without a server.

    (schemathesis' ``from_fixture`` does not work with this pytest, so the schema is
    loaded at import time and the calls go to the fixture's server.)
    """
    app = create_app(ControlSettings(db="sqlite:///:memory:"), background=False)
    try:
        return app.openapi()
    finally:
        app.state.service.repo.close()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


# Explicit parametrisation (not ``schema.parametrize()``): it also runs under
# pytest-xdist, where the plugin's generated items are silently collapsed.
def _has_inputs(op: APIOperation) -> bool:
    spec = DOCUMENT["paths"][op.path][op.method.lower()]
    return bool(spec.get("parameters") or spec.get("requestBody") or spec.get("security"))


def _operations() -> list[APIOperation]:
    ops = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"our OpenAPI document is invalid: {result.err()}")
        ops.append(result.ok())
    return ops


# Operations without any input have no negative cases.
CASES = [
    pytest.param(op, mode, id=f"{op.label} {mode.value}")
    for op in _operations()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _has_inputs(op)
]


def _accepted_unless_ssrf_guarded(ctx: Any, response: Any, case: schemathesis.Case) -> Any:
    """Schema-valid data must be accepted, except a webhook URL whose host is (or resolves
    to) a private address: refused on purpose, 422 webhook-target-forbidden
    (control/webhook_guard.py), and an Idempotency-Key the fuzzer sends again with another
    body: 422 idempotency-key-reused (control/idempotency.py). A JSON schema can express
    neither."""
    if response.status_code == 422:
        body = response.json()
        if isinstance(body, dict) and str(body.get("type", "")).endswith(
            ("/webhook-target-forbidden", "/idempotency-key-reused")
        ):
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_api_never_fails_and_conforms(
    fuzz_server: ControlServer, operation: APIOperation, mode: GenerationMode
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        rnd = random.Random(repr(case.path_parameters))
        if case.path_parameters:
            if "input_id" in case.path_parameters and rnd.random() < 0.5:
                case.path_parameters["input_id"] = _state["input_id"]
            if "jti" in case.path_parameters and rnd.random() < 0.3:
                case.path_parameters["jti"] = _state["jti"]
        # Keep the generated (random) credentials' presence, but make them a real key:
        # a case that omits Authorization on purpose must still be refused.
        if case.headers is not None and "authorization" in case.headers:  # case-insensitive
            case.headers["Authorization"] = f"Bearer {_state['key']}"
        case.call_and_validate(
            base_url=_state["base"],
            excluded_checks=[positive_data_acceptance],
            additional_checks=[_accepted_unless_ssrf_guarded],
        )

    run()


def test_openapi_document_describes_problem_json(fuzz_server: ControlServer) -> None:
    doc = httpx.get(f"{fuzz_server.base_url}/openapi.json").json()
    assert doc == DOCUMENT  # the fuzzed document is the one the server serves
    op = doc["paths"]["/v1/live_inputs/{input_id}/playback_urls"]["post"]
    assert "application/problem+json" in op["responses"]["422"]["content"]
    assert set(doc["components"]["schemas"]["ApiProblem"]["required"]) >= {
        "type",
        "title",
        "status",
        "detail",
    }
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_fuzzing_got_past_authentication(fuzz_server: ControlServer) -> None:
    """Runs after the fuzz (file order): generated creates were accepted, not just refused."""
    r = httpx.get(
        f"{fuzz_server.base_url}/v1/live_inputs",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {_state['key']}"},
    )
    assert r.status_code == 200 and len(r.json()["data"]) > 1
