"""Shadow mode between two real serving processes: the champion copies its traffic to a shadow candidate.

The champion runs with ESTEIRA_SHADOW_URL (as every task does in AWS, pointing at the canary service's Cloud
Map name); the candidate runs with ESTEIRA_SERVING_ROLE=shadow. Clients only ever get the champion's answers;
the champion's EMF reports how many copies the candidate answered and how many agreed; the copies are
not captured a second time by the candidate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.loadgen import ServiceProcess, free_port
from tests.serving.conftest import HTTP_PATHS, new_bucket, read_capture, service_env


# Shadow copies leave through httpx whatever the HTTP path: the plain path's run is in the slow suite.
@pytest.fixture(scope="module", params=["fast", pytest.param("plain", marks=pytest.mark.slow)])
def http_path(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"ESTEIRA_SERVING_FAST_PATH": HTTP_PATHS[request.param]}


def _emf(proc: ServiceProcess) -> list[dict[str, Any]]:
    docs = []
    for line in proc.stdout_path.read_text().splitlines():
        if line.startswith("{"):
            docs.append(json.loads(line))
    return docs


def _shadow_totals(proc: ServiceProcess) -> dict[str, int]:
    totals = {"ShadowRequests": 0, "ShadowAgreements": 0}
    for doc in _emf(proc):
        for key in totals:
            totals[key] += int(doc.get(key, 0))
    return totals


def test_champion_copies_to_a_shadow_candidate_and_reports_agreement(
    registered_model: dict[str, Any], moto_s3: str, tmp_path: Path, http_path: dict[str, str]
) -> None:
    bucket = new_bucket(moto_s3)
    capture = {
        "ESTEIRA_CAPTURE_S3_URI": f"s3://{bucket}/capture",
        "ESTEIRA_CAPTURE_FLUSH_S": "0.5",
        "AWS_ENDPOINT_URL": moto_s3,
    }
    # The candidate: the same model from a local copy, reported as version "candidate" so that every
    # answer and metric says which process produced it.
    import mlflow

    mlflow.set_tracking_uri(registered_model["tracking_uri"])
    local_model = mlflow.artifacts.download_artifacts(
        f"models:/{registered_model['name']}/{registered_model['version']}", dst_path=str(tmp_path / "model")
    )
    candidate_port = free_port()
    candidate = ServiceProcess(
        service_env(
            registered_model,
            ESTEIRA_MODEL_URI=local_model,
            ESTEIRA_SERVING_ROLE="shadow",
            ESTEIRA_MODEL_VERSION="candidate",
            **capture,
            **http_path,
        ),
        tmp_path / "candidate",
        port=candidate_port,
        name="candidate",
    )
    champion = ServiceProcess(
        service_env(
            registered_model,
            ESTEIRA_SHADOW_URL=f"http://127.0.0.1:{candidate_port}",
            ESTEIRA_SHADOW_PROBE_S="0.2",
            **capture,
            **http_path,
        ),
        tmp_path / "champion",
        name="champion",
    )
    champion.start()
    try:
        champion.wait_ready()
        # No candidate yet: the champion serves and copies nothing (the probe finds nobody).
        with httpx.Client(base_url=champion.url, timeout=10) as client:
            assert client.post("/predict", json={"text": "my card has not arrived"}).status_code == 200
        candidate.start()
        health = candidate.wait_ready() and httpx.get(f"{candidate.url}/health").json()
        assert health["role"] == "shadow"
        time.sleep(1.0)  # a few probe intervals: the champion sees the shadow candidate
        texts = ["my card has not arrived", "how do I top up", "I was charged twice", "change my PIN"]
        with httpx.Client(base_url=champion.url, timeout=10) as client:
            for i in range(40):
                resp = client.post("/predict", json={"text": texts[i % len(texts)]})
                assert resp.status_code == 200
                assert resp.headers["x-model-version"] == registered_model["version"]  # the champion's answer
            single = client.post("/predict", json={"texts": texts})
            assert single.status_code == 200
        deadline = time.monotonic() + 20
        totals = _shadow_totals(champion)
        while totals["ShadowRequests"] < 44 and time.monotonic() < deadline:
            time.sleep(0.5)
            totals = _shadow_totals(champion)
        assert totals["ShadowRequests"] == 44, totals  # 40 single + one batch of 4; none before the candidate
        assert totals["ShadowAgreements"] == 44, totals  # the same registered model: it always agrees
        shadow_docs = [d for d in _emf(champion) if "ShadowRequests" in d]
        assert {d["ModelVersion"] for d in shadow_docs} == {"candidate"}
    finally:
        champion.stop()
        candidate.stop()
    # The copies count in the candidate's own metrics but are not captured again.
    captured = [r for records in read_capture(moto_s3, bucket).values() for r in records]
    versions = {r["model_version"] for r in captured}
    assert "candidate" not in versions, versions
    assert len(captured) == 45


def test_health_names_the_role(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    assert httpx.get(f"{proc.url}/health").json()["role"] == "serving"


pytestmark = pytest.mark.timeout(180)
