"""The OpenAPI schema (``/api/schema/``) against a real worker, with schemathesis: for every
operation, generated requests from an authenticated user (fixed seed, bounded examples)
get no 5xx, and every response conforms to the schema: its status code is documented, its
content type, headers and body match what the schema says.

The schema is generated in-process when the module is collected (schemathesis' lazy
``from_fixture`` loader does not work with this pytest), and the first test checks it is
exactly what the worker serves at ``/api/schema/``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis import checks

pytestmark = pytest.mark.e2e

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def _spec() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


SPEC = _spec()
schema = schemathesis.openapi.from_dict(SPEC)
# Fuzzing only, bounded by max_examples below: the coverage phase would add dozens of
# boundary cases per operation, which CI's time on a 2-core machine can't afford.
schema.config.phases.coverage.enabled = False


@pytest.fixture(scope="module")
def api_user(rel_platform):
    seeded = rel_platform.seed(2, [[0, 1]])
    return seeded.users[0]


def test_the_worker_serves_this_schema(rel_platform):
    served = httpx.get(f"{rel_platform.url(0)}/api/schema/?format=json", timeout=30)
    assert served.status_code == 200
    assert served.json() == SPEC


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_conforms_to_its_schema(case, rel_platform, api_user):
    response = case.call(
        base_url=rel_platform.url(0),
        headers={"Authorization": f"Bearer {api_user['access']}"},
        timeout=30,
    )
    if twisted_refused(case, response):
        return
    case.validate_response(response, checks=CHECKS)


def twisted_refused(case, response) -> bool:
    """daphne's HTTP server (Twisted) parses multipart bodies itself, before the application
    sees them, and answers a body with no part at all with a bare 400 (no content type, no
    body): nothing the platform can change behind daphne (uvicorn hands the body on)."""
    return (
        (case.media_type or "").startswith("multipart/form-data")
        and response.status_code == 400
        and not response.content
    )
