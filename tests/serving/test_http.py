"""The service as a real process over real HTTP: answers, headers, bad input, readiness, EMF and capture."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from benchmarks.loadgen import ServiceProcess
from tests.serving.conftest import read_capture, service_env

JSON = {"content-type": "application/json"}


def test_predict_one_and_batch(service: tuple[ServiceProcess, str], registered_model: dict[str, Any]) -> None:
    proc, _ = service
    version = registered_model["version"]
    with httpx.Client(base_url=proc.url) as http:
        one = http.post("/predict", json={"text": "I lost my card, please block it", "top_k": 2})
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["model_version"] == version and one.headers["x-model-version"] == version
        assert body["request_id"] == one.headers["x-request-id"]
        assert 0.0 <= body["confidence"] <= 1.0 and len(body["top_k"]) == 2
        assert body["top_k"][0]["intent"] == body["intent"]
        batch = http.post("/predict", json={"texts": ["where is my card", "what is the exchange rate", "x"]})
        assert batch.status_code == 200, batch.text
        preds = batch.json()["predictions"]
        assert len(preds) == 3 and all(len(p["top_k"]) == 3 for p in preds)
        # Same text alone or in a batch: the same answer (batching does not change predictions).
        alone = http.post("/predict", json={"text": "where is my card"}).json()
        assert alone["intent"] == preds[0]["intent"]
        assert alone["confidence"] == pytest.approx(preds[0]["confidence"], rel=1e-5)
        ex = http.post("/explain", json={"text": "I lost my card, please block it", "top_n": 3})
        assert ex.status_code == 200 and ex.headers["x-model-version"] == version
        assert ex.json()["intent"] == body["intent"] and 1 <= len(ex.json()["contributions"]) <= 3
        other = http.post("/explain", json={"text": "lost card", "intent": body["top_k"][1]["intent"]})
        assert other.status_code == 200 and other.json()["intent"] == body["top_k"][1]["intent"]
        health, ready = http.get("/health"), http.get("/ready")
        assert health.status_code == 200 and ready.status_code == 200
        assert ready.json()["model_version"] == version
        assert ready.json()["model_uri"] == f"models:/{registered_model['name']}/{version}"
        assert health.headers["x-model-version"] == version
        spec = http.get("/openapi.json").json()
        assert {"/predict", "/explain", "/health", "/ready"} <= set(spec["paths"])
        ref = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert "text" in spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
        assert http.get("/docs").status_code == 200


BAD: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("/predict", b"{not json", JSON, 400, "body"),
    ("/predict", b"", JSON, 400, "body"),
    ("/predict", b'{"text": "caf\xe9"}', JSON, 400, "body"),  # Latin-1, not UTF-8
    ("/predict", b'{"text": "hello"}', {"content-type": "text/plain"}, 415, "content-type"),
    ("/predict", b"text=hello", {"content-type": "application/x-www-form-urlencoded"}, 415, "content-type"),
    ("/predict", b'{"text": "hello"}', {}, 415, "content-type"),
    ("/predict", b"[1, 2]", JSON, 422, "body"),
    ("/predict", b'"hello"', JSON, 422, "body"),
    ("/predict", b"{}", JSON, 422, "text"),
    ("/predict", b'{"txt": "hello"}', JSON, 422, "txt"),
    ("/predict", b'{"text": 42}', JSON, 422, "text"),
    ("/predict", b'{"text": null}', JSON, 422, "text"),
    ("/predict", b'{"text": ["a"]}', JSON, 422, "text"),
    ("/predict", b'{"text": ""}', JSON, 422, "text"),
    ("/predict", b'{"text": " \\t\\n "}', JSON, 422, "text"),
    ("/predict", json.dumps({"text": "a" * 201}).encode(), JSON, 422, "text"),
    ("/predict", b'{"texts": "hello"}', JSON, 422, "texts"),
    ("/predict", b'{"texts": []}', JSON, 422, "texts"),
    ("/predict", json.dumps({"texts": ["a"] * 9}).encode(), JSON, 422, "texts"),
    ("/predict", b'{"texts": ["ok", 3]}', JSON, 422, "texts[1]"),
    ("/predict", b'{"texts": ["ok", "   "]}', JSON, 422, "texts[1]"),
    ("/predict", b'{"text": "a", "texts": ["b"]}', JSON, 422, "texts"),
    ("/predict", b'{"text": "a", "top_k": 0}', JSON, 422, "top_k"),
    ("/predict", b'{"text": "a", "top_k": "3"}', JSON, 422, "top_k"),
    ("/predict", b'{"text": "a", "top_k": true}', JSON, 422, "top_k"),
    ("/predict", b'{"text": "a", "top_k": 1e400}', JSON, 422, "top_k"),
    ("/predict", b"[" * 100000 + b"]" * 100000, JSON, 413, "body"),
    ("/predict", json.dumps({"texts": ["a" * 190] * 200}).encode(), JSON, 413, "body"),
    ("/explain", b'{"text": "a", "intent": "no_such_intent"}', JSON, 422, "intent"),
    ("/explain", b'{"text": "a", "intent": 5}', JSON, 422, "intent"),
    ("/explain", b'{"top_n": 3}', JSON, 422, "text"),
    ("/explain", b'{"text": "a", "top_n": 51}', JSON, 422, "top_n"),
    ("/explain", b"\xff\xfe", JSON, 400, "body"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "field"), BAD)
def test_bad_input_is_a_4xx_naming_the_field(
    service: tuple[ServiceProcess, str], path: str, body: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    proc, _ = service
    resp = httpx.post(f"{proc.url}{path}", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    err = resp.json()
    assert err["field"] == field and err["error"] and err["message"]
    assert resp.headers["x-model-version"]


def test_deeply_nested_json_within_the_size_limit_is_a_4xx(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    resp = httpx.post(f"{proc.url}/predict", content=b"[" * 9000 + b"]" * 9000, headers=JSON)
    assert 400 <= resp.status_code < 500, resp.text


def test_unknown_route_and_method_are_json_4xx(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    assert httpx.get(f"{proc.url}/nope").status_code == 404
    wrong = httpx.get(f"{proc.url}/predict")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_lone_surrogate_and_unicode_are_answered(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    for raw in (b'{"text": "\\ud800 card"}', '{"text": "cartão perdido 💳"}'.encode()):
        resp = httpx.post(f"{proc.url}/predict", content=raw, headers=JSON)
        assert resp.status_code == 200, resp.text


def test_emf_metrics_and_capture(
    service: tuple[ServiceProcess, str], moto_s3: str, registered_model: dict[str, Any]
) -> None:
    proc, bucket = service
    version = registered_model["version"]
    with httpx.Client(base_url=proc.url) as http:
        ids = [http.post("/predict", json={"text": f"card number {i}"}).json()["request_id"] for i in range(5)]
        batch = http.post("/predict", json={"texts": ["top up failed", "refund please"]}).json()
        http.post("/predict", json={"text": ""})
    deadline = time.monotonic() + 15
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        captured = read_capture(moto_s3, bucket)
        records = [r for recs in captured.values() for r in recs]
        if {*ids, f"{batch['request_id']}-0", f"{batch['request_id']}-1"} <= {r["request_id"] for r in records}:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"capture incomplete: {len(records)} records")
    for key, recs in captured.items():
        assert key.startswith(f"capture/model_version={version}/dt=")
        day, hour = key.split("/")[2], key.split("/")[3]
        for r in recs:
            assert set(r) == {"ts", "request_id", "text", "intent", "confidence", "model_version", "redaction"}
            assert r["ts"].endswith("Z") and day == f"dt={r['ts'][:10]}" and hour == f"hour={r['ts'][11:13]}"
        assert key.endswith(".jsonl")
    # EMF: aggregated records on stdout, interval 1 s here.
    deadline = time.monotonic() + 10
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = [json.loads(x) for x in proc.stdout_path.read_text().splitlines() if x.startswith("{")]
        if sum(d.get("Http4xx", 0) for d in docs) >= 1 and sum(d.get("RequestCount", 0) for d in docs) >= 8:
            break
        time.sleep(0.5)
    main = [d for d in docs if "RequestCount" in d]
    assert main, docs
    doc = main[-1]
    cw = doc["_aws"]["CloudWatchMetrics"][0]
    assert cw["Namespace"] == "Esteira" and cw["Dimensions"] == [["Service", "ModelVersion"], ["Service"]]
    names = {m["Name"] for m in cw["Metrics"]}
    assert {"RequestCount", "LatencyP50", "LatencyP90", "LatencyP99", "Http4xx", "Http5xx", "CaptureDropped"} <= names
    assert doc["Service"] == "esteira-serving" and doc["ModelVersion"] == version
    assert sum(d.get("Http5xx", 0) for d in main) == 0
    with_conf = [d for d in main if "MeanConfidence" in d]
    assert with_conf and 0 < with_conf[-1]["MeanConfidence"] <= 1 and 0 <= with_conf[-1]["LowConfidenceRate"] <= 1
    per_intent = [d for d in docs if "Predictions" in d]
    assert per_intent and per_intent[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["Service", "ModelVersion", "Intent"]
    ]
    # Logs are JSON lines on stderr.
    logs = [json.loads(x) for x in proc.stderr_path.read_text().splitlines() if x.startswith("{")]
    assert any(r["message"] == "model loaded" and r["model_version"] == version for r in logs)


def test_model_that_fails_to_load_keeps_ready_failing(registered_model: dict[str, Any], tmp_path: Any) -> None:
    env = service_env(registered_model, MODEL_URI=f"models:/{registered_model['name']}@no-such-alias")
    proc = ServiceProcess(env, tmp_path).start()
    try:
        body = proc.wait_ready(expect=503)
        assert body["status"] == "failed" and "no-such-alias" in body["reason"]
        with httpx.Client(base_url=proc.url) as http:
            assert http.get("/health").status_code == 200
            ready = http.get("/ready")
            assert ready.status_code == 503 and "no-such-alias" in ready.json()["reason"]
            resp = http.post("/predict", json={"text": "hello"})
            assert resp.status_code == 503 and resp.json()["error"] == "model_not_ready"
            assert http.post("/predict", json={"text": 1}).status_code == 422  # bad input is still the client's
    finally:
        proc.stop()
