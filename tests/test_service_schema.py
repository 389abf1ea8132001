"""Property-based: requests generated from the OpenAPI schema never get a 5xx, and every
response matches the schema (schemathesis)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from imgsearch.library import Index
from imgsearch.service.app import create_app

from .support.photos import sample_photos


@pytest.fixture
def api_schema(db, lite0, tmp_path):
    for name in ("chelsea", "coffee", "rocket"):
        sample_photos()[name].save(tmp_path / f"{name}.jpg")
    index = Index(db.url, device="cpu", pool_size=2, encoders=[lite0])
    index.ingest([tmp_path])
    app = create_app(index, api_token="token", max_upload_bytes=1_000_000)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    index.close()


@pytest.mark.slow
def test_api_never_fails_and_keeps_its_schema(api_schema) -> None:
    """Each operation of the schema, 30 generated requests. Driven through schemathesis's
    Python API (operations as Hypothesis strategies) rather than its pytest integration, whose
    `from_fixture` breaks on pytest 9.2 (`'Function' object has no attribute '_nodeid'`)."""
    failed: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            check()
        except Exception as exc:  # noqa: BLE001  every operation is tried; all failures shown
            failed[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    assert failed == {}
