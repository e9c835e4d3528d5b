"""Hostile input over REST: schemathesis generates requests from /openapi.json, valid and
invalid, with every check it has on: valid requests are served, invalid ones refused, every
answer is documented there, and none is a server error.

In-process over WSGI against ``create_app(settings)`` on SQLite and the session emulator, so a
few thousand requests fit in a few minutes. gRPC's hostile input is tested in tests/rpc, the
real doors' handling of the same rules in tests/test_input_rules.py."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tests.conftest import module_env
from tests.rest.conftest import rest_env
from tests.rest.helpers import make_token

# Answers that are a true account of the outside world rather than a server fault: an action
# the fuzzer happened to name ran and failed (502), as documented for that operation.
UPSTREAM_OUTCOMES = {502: {"action_failed", "web_action_failed"}}

# About 40 operations, both modes: some 3,400 requests, inside the per-test timeout under load.
EXAMPLES_PER_OPERATION = 50


@pytest.fixture(scope="module")
def web_app(tmp_path_factory, emulator):
    from owaction.config import load_settings
    from owaction.rest import create_app

    tmp = tmp_path_factory.mktemp("hostile")
    env = rest_env(module_env(tmp, emulator, f"sqlite://{tmp}/owaction.sqlite"), **{
        # The fuzzer must meet validation, not the limits meant for real callers.
        "RATE_LIMIT_CALLER": "1000000/minute", "RATE_LIMIT_ACTION": "1000000/minute",
        "RATE_LIMIT_TOKEN": "1000000/minute",
        # An action the fuzzer names may sleep for what it asks; cap how long that can be.
        "MAX_ACTION_TIMEOUT": "2000", "OPENWHISK_BLOCKING_WAIT_MS": "2000",
        "REQUEST_TIMEOUT": "8",
        # No schema can bound a JSON object's encoded size (MAX_PAYLOAD_BYTES is in the field's
        # description); at the default, what the fuzzer generates stays within it.
        "MAX_PAYLOAD_BYTES": "1048576",
    })
    app = create_app(load_settings(env))
    yield app
    app.extensions["owaction"].service.close()


class BearerToken:
    """A valid token on every generated request, except where schemathesis deliberately
    generates a bad Authorization header (negative mode); that one must get 401."""

    def get(self, case, context) -> str:
        return make_token()

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# A valid request may still meet the state earlier ones left: the fuzzer reuses an
# Idempotency-Key for a different request, which is a 422 (checked to be that and nothing else).
CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]}}})


@pytest.fixture(scope="module")
def web_schema(web_app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", web_app, config=CONFIG)
    schema.auth(refresh_interval=60)(BearerToken)
    return schema


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)


def fuzz(operation, mode: GenerationMode) -> int:
    """Send the operation's generated requests; returns how many were sent."""
    sent = []

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode, auth_storage=operation.schema.auth))
    def run(case):
        response = case.call()
        sent.append(response.status_code)
        content_type = response.headers.get("content-type", [""])[0]
        body = response.json() if "json" in content_type else None
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        assert response.status_code < 500 or code in UPSTREAM_OUTCOMES.get(
            response.status_code, ()), (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {body}")
        if (mode is GenerationMode.POSITIVE
                and case.operation.definition.raw.get("security") == [{"bearerAuth": []}]):
            assert response.status_code != 401, f"the valid token was refused: {body}"
        if response.status_code == 422:
            assert code == "idempotency_key_reused", body
        # Every check schemathesis has, positive and negative data, response conformance; a
        # server error is judged above instead, where an action that failed may answer 502.
        case.validate_response(response, excluded_checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (GET /health takes no input).
        assert mode is GenerationMode.NEGATIVE and not sent, operation.label
    return len(sent)


# Pytest parametrization through schemathesis.pytest needs a pytest internal (`_nodeid`) that
# pytest 9 no longer has, so the operations are walked here and hypothesis is driven directly.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers_and_no_server_error(web_schema, mode):
    sent = {}
    for result in web_schema.get_all_operations():
        operation = result.ok()
        sent[operation.label] = fuzz(operation, mode)
    documented = {f"{method.upper()} {path}" for path, methods in web_schema.raw_schema["paths"]
                  .items() for method in methods}
    # schemathesis leaves out the document's own route.
    assert set(sent) == documented - {"GET /openapi.json"}
    assert sum(sent.values()) >= 1000, sent
