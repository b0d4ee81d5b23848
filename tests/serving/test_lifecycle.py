"""Graceful shutdown and model swap, on real processes under real load (loadgen in its own process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.loadgen import ServiceProcess
from pipelines import registry
from pipelines.train import train
from tests.serving.conftest import FAST, assert_http_path, new_bucket, read_capture, service_env

ROOT = Path(__file__).resolve().parents[2]


def _texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(["where is my card", "I was charged twice", "top up failed", "change my PIN"]))
    return path


def _loadgen(port: int, seconds: float, tmp_path: Path, record: Path, concurrency: int = 16) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "benchmarks.loadgen", "--port", str(port), "--seconds", str(seconds),
            "--concurrency", str(concurrency), "--texts", str(_texts(tmp_path)), "--record", str(record),
            "--stop-on-refused", "--timeout", "30",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigterm_under_load_answers_every_accepted_request_and_flushes_capture(
    registered_model: dict[str, Any], moto_s3: str, tmp_path: Path, http_path: dict[str, str]
) -> None:
    bucket = new_bucket(moto_s3)
    # A long flush interval: whatever reaches S3 after the first seconds was written by the shutdown flush.
    env = service_env(
        registered_model,
        ESTEIRA_CAPTURE_S3_URI=f"s3://{bucket}/c",
        ESTEIRA_CAPTURE_FLUSH_S="600",
        ESTEIRA_CAPTURE_FLUSH_RECORDS="1000000",
        # Room for every request an idle machine answers in the seconds of load (about 15,000 req/s
        # here): this test is about the shutdown flush, not the overflow drop (test_capture.py has that).
        ESTEIRA_CAPTURE_MAX_BUFFER="1000000",
        AWS_ENDPOINT_URL=moto_s3,
        **http_path,
    )
    proc = ServiceProcess(env, tmp_path).start()
    proc.wait_ready()
    assert_http_path(proc, http_path)
    record = tmp_path / "ok-ids.txt"
    load = _loadgen(proc.port, 20, tmp_path, record)
    time.sleep(3)
    assert read_capture(moto_s3, bucket) == {}  # nothing flushed yet
    proc.process.send_signal(signal.SIGTERM)
    code = proc.process.wait(30)
    out, _ = load.communicate(timeout=60)
    result = json.loads(out)
    assert code == 0
    assert result["ok"] > 50, result
    assert result["statuses"] == {"200": result["ok"]}, result  # every answered request got a 200
    # The only failures allowed are requests the server never accepted (refused / closed before reading).
    assert set(result["errors"]) <= {"refused", "closed_before_response", "os:ConnectionResetError"}, result
    ok_ids = set(record.read_text().split())
    captured = {r["request_id"] for recs in read_capture(moto_s3, bucket).values() for r in recs}
    assert ok_ids and ok_ids <= captured, f"{len(ok_ids - captured)} answered requests missing from the capture"
    logs = [json.loads(x) for x in proc.stderr_path.read_text().splitlines() if x.startswith("{")]
    assert any(r["message"] == "shutdown complete" for r in logs)
    assert any(r["message"].startswith("capture: closed") for r in logs)


@pytest.mark.slow
def test_model_swap_under_load_has_no_failed_requests(
    registered_model: dict[str, Any], slice_files: dict[str, Path], tmp_path: Path, http_path: dict[str, str]
) -> None:
    """SIGHUP re-resolves ESTEIRA_MODEL_URI (the alias moved), loads beside the old model, swaps atomically."""

    from model.classifier import ModelParams

    settings = registered_model["settings"]
    name = f"{settings.registered_model_name}-swap"
    settings = settings.replace(registered_model_name=name, experiment_name=name)
    first = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    second = train(
        str(slice_files["train"]),
        str(slice_files["test"]),
        params=ModelParams(estimator="svm", svm_c=0.2, calibration_folds=0, n_jobs=1),
        settings=settings,
    )
    client = registry.client(settings)
    client.set_registered_model_alias(name, "champion", first["model_version"])
    env = service_env({**registered_model, "name": name}, **http_path)
    proc = ServiceProcess(env, tmp_path).start()
    try:
        assert proc.wait_ready()["model_version"] == first["model_version"]
        record = tmp_path / "ids.txt"
        load = _loadgen(proc.port, 12, tmp_path, record, concurrency=8)
        time.sleep(2)
        client.set_registered_model_alias(name, "champion", second["model_version"])
        proc.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if httpx.get(f"{proc.url}/ready").json().get("model_version") == second["model_version"]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the model was not swapped")
        swapped_at = time.monotonic()
        out, _ = load.communicate(timeout=60)
        assert time.monotonic() - swapped_at > 1, "load ended before the swap: the test proves nothing"
        result = json.loads(out)
        assert result["statuses"] == {"200": result["ok"]} and result["errors"] == {}, result
        resp = httpx.post(f"{proc.url}/predict", json={"text": "where is my card"})
        assert resp.headers["x-model-version"] == second["model_version"] == resp.json()["model_version"]
        # A reload that fails keeps the current model serving.
        client.delete_registered_model_alias(name, "champion")
        proc.process.send_signal(signal.SIGHUP)
        time.sleep(3)
        ready = httpx.get(f"{proc.url}/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == second["model_version"]
        assert httpx.post(f"{proc.url}/predict", json={"text": "where is my card"}).status_code == 200
    finally:
        assert proc.stop() == 0
