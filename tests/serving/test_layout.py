"""The serving package keeps one home per concern: these are the rules a change could quietly break."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from model.serving.app import create_app
from model.serving.settings import ServingSettings

PACKAGE = Path(__file__).resolve().parents[2] / "model" / "serving"


def test_answer_headers_are_named_in_the_contract_only() -> None:
    literal = re.compile(r"""b?["']x-(model-version|request-id)["']""", re.I)
    where = sorted(p.name for p in PACKAGE.glob("*.py") if literal.search(p.read_text()))
    assert where == ["contract.py"], where


def test_predict_has_no_dead_route_and_is_documented_from_the_contract() -> None:
    settings = ServingSettings(model_uri="", metrics_interval_s=3600, max_batch=7, max_text_chars=99)
    app = create_app(settings)
    fastapi_app = app.app  # the ASGI layer wraps the FastAPI app
    assert "/predict" not in {getattr(r, "path", None) for r in fastapi_app.routes}  # type: ignore[attr-defined]
    with TestClient(app) as client:
        doc = client.get("/openapi.json").json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    # The documented limits are the ones this service enforces (the same Struct validates).
    assert schema["properties"]["texts"]["maxItems"] == 7
    assert schema["properties"]["text"]["maxLength"] == 99
    assert schema["additionalProperties"] is False
    for name in ("PredictResponse", "BatchPredictResponse", "ErrorBody", "ExplainRequest", "ReadyBody"):
        assert name in doc["components"]["schemas"]
