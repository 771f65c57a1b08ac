"""Schema-driven fuzzing of the JSON API with schemathesis against its own published OpenAPI schema.

Every generated request (valid and invalid) must get an answer that is not a 5xx, and every error must
be JSON with a ``detail`` message. The suite runs a few examples per operation; ``make fuzz`` runs many
(LORA_MANAGER_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api import tokens
from tests.adapters.catalog_factory import make_adapter

EXAMPLES = int(os.environ.get("LORA_MANAGER_FUZZ_EXAMPLES", "8"))


@schemathesis.check
def errors_are_json_with_detail(ctx, response, case):
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{response.status_code} is not JSON: {response.text[:300]!r}") from None
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], body


@pytest.fixture(autouse=True)
def _keep_test_connection(db):
    """As Django's test client does: a request must not close the test database connection."""
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def fuzz_token(admin_user):
    make_adapter("fuzz target", tags=("fuzz",))
    return tokens.create(admin_user, "fuzzer")[1]


# The schema the API publishes, read through the app itself (the schema view needs no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
def test_api_never_fails_with_a_server_error(case, fuzz_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_token}"},
        checks=[not_a_server_error, errors_are_json_with_detail],
    )
