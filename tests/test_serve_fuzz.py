"""Fuzz every operation of the OpenAPI document (schemathesis): no input gives a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from helpers.serve import build_index, build_store
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from pipeline.api.app import create_app
from pipeline.service.keys import create_key


@pytest.mark.slow
def test_no_input_gives_a_server_error(tmp_path):
    config = build_store(tmp_path)
    build_index(config, real_encoder=True)  # vector search needs the exported query encoder
    # An admin key reaches every operation; 401/403 paths are covered in test_serve.py.
    key = create_key(config.paths.service_db, "admin")[0]
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(config))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        def fuzz(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
            response = case.call()
            if response.status_code == 503 and "no model to serve" in response.text:
                # This store has no champion: /predict says so (test_predict.py serves one).
                assert case.path.startswith("/predict"), case.path
                return
            case.validate_response(response, checks=[not_a_server_error])

        fuzz()
