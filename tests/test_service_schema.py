"""Property-based: requests generated from the OpenAPI schema never get a 5xx, and every
response matches the schema (schemathesis)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .photos import sample_photos


@pytest.fixture
def api_schema(db, lite0, tmp_path):
    for name in ("chelsea", "coffee", "rocket"):
        sample_photos()[name].save(tmp_path / f"{name}.jpg")
    index = Index(db.url, device="cpu", pool_size=2)
    index._encoders[(index.model, None)] = lite0
    index.ingest([tmp_path])
    app = create_app(index, api_token="token", max_upload_bytes=1_000_000)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    index.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_keeps_its_schema(case) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
