"""Step: ask the freshly deployed service real questions before calling the deploy done.

Passing means: the service is ready, every answer is a 2xx carrying `X-Model-Version` equal to the
version just deployed (so we are not talking to the old revision), and on labelled smoke rows the
accuracy clears a bar. Uses only the standard library so the Lambda image needs nothing extra.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from model.config import Settings
from pipelines import aws


class SmokeTestFailed(RuntimeError):
    """The new revision answered, but wrongly: roll back."""


def _call(url: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read().decode(errors="replace")[:500]


def _wait_ready(base: str, deadline: float) -> None:
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, _, body = _call(f"{base}/ready", None, 5)
            if status == 200:
                return
            last = f"HTTP {status}: {body}"
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    raise SmokeTestFailed(f"{base}/ready never answered 200 ({last})")


def _intent_of(body: Any) -> str | None:
    if isinstance(body, dict):
        if isinstance(body.get("intent"), str):
            return body["intent"]
        preds = body.get("predictions")
        if isinstance(preds, list) and preds and isinstance(preds[0], dict):
            return preds[0].get("intent")
    return None


def smoke_rows(uri: str, limit: int = 40, settings: Settings | None = None) -> list[tuple[str, str]]:
    from pipelines.validate_data import load_validated

    data = load_validated(uri, settings=settings)
    return list(zip(data.texts, data.labels, strict=True))[:limit]


def smoke_test(
    model_version: str,
    *,
    smoke_data: str | None = None,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
) -> dict[str, Any]:
    wf = wf or aws.WorkflowSettings.from_env()
    base = wf.serving_url.rstrip("/")
    started = time.monotonic()
    _wait_ready(base, started + wf.smoke_timeout_seconds)
    uri = smoke_data or wf.smoke_data
    rows = smoke_rows(uri, settings=settings) if uri else [("I still have not received my new card", "")]
    correct, latencies, versions = 0, [], set()
    for text, label in rows:
        t0 = time.monotonic()
        status, headers, body = _call(f"{base}/predict", {"text": text}, 10)
        latencies.append((time.monotonic() - t0) * 1000)
        if status != 200:
            raise SmokeTestFailed(f"POST /predict answered HTTP {status}: {body}")
        versions.add(headers.get("x-model-version"))
        intent = _intent_of(body)
        if intent is None:
            raise SmokeTestFailed(f"POST /predict answer has no intent: {str(body)[:200]}")
        correct += int(intent == label)
    if versions != {str(model_version)}:
        raise SmokeTestFailed(f"service answered as model version(s) {sorted(map(str, versions))}, not {model_version}")
    accuracy = correct / len(rows) if uri else None
    if accuracy is not None and accuracy < wf.smoke_min_accuracy:
        raise SmokeTestFailed(f"smoke accuracy {accuracy:.3f} on {len(rows)} rows < required {wf.smoke_min_accuracy}")
    latencies.sort()
    # Passed. Nothing is recorded here: in dev this step runs outside the VPC (the internet-facing ALB is
    # unreachable from private subnets without NAT) and so cannot reach MLflow. The next state records
    # the release in the lineage from this result (pipelines/deploy.py record_smoke_passed); a failure
    # is recorded by the rollback that follows.
    return {
        "step": "smoke-test",
        "status": "passed",
        "model_version": str(model_version),
        "requests": len(rows),
        "accuracy": accuracy,
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "max_ms": round(latencies[-1], 1),
    }
