"""model.serving.shadow: copies go to a real HTTP candidate, agreement is counted and printed as EMF."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from model.serving.settings import ServingSettings
from model.serving.shadow import ShadowMirror

ROLE = {"role": "shadow"}  # what the candidate's /health says; tests change it


@pytest.fixture()
def candidate() -> Iterator[str]:
    """A candidate that answers 'card' for texts mentioning a card and 'other' for the rest (or 500 on 'boom')."""
    ROLE["role"] = "shadow"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", **ROLE}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
            if any("boom" in t for t in texts):
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"predictions": [{"intent": "card" if "card" in t else "other"} for t in texts]}).encode()
            self.send_response(200)
            self.send_header("X-Model-Version", "7")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _wait_idle(mirror: ShadowMirror) -> None:
    deadline = time.monotonic() + 10
    while not mirror._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)


def _started(mirror: ShadowMirror) -> ShadowMirror:
    mirror.start()
    deadline = time.monotonic() + 5
    while not mirror.active and time.monotonic() < deadline:
        time.sleep(0.02)
    return mirror


def test_agreement_is_counted_per_candidate_version_and_printed_as_emf(candidate: str) -> None:
    out = io.StringIO()
    mirror = _started(ShadowMirror(candidate, "esteira-serving", flush_s=3600, probe_s=0.1, out=out))
    assert mirror.active
    mirror.offer(["my card is lost", "hello"], ["card", "card"])  # agrees on 1 of 2
    mirror.offer(["card declined"], ["card"])  # agrees
    mirror.offer(["boom"], ["card"])  # the candidate fails: an error, not a disagreement
    _wait_idle(mirror)
    mirror.stop()
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    by_version = {d["ModelVersion"]: d for d in docs}
    assert by_version["7"]["ShadowRequests"] == 3 and by_version["7"]["ShadowAgreements"] == 2
    assert by_version["7"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "ModelVersion"]]
    assert by_version["unknown"]["ShadowErrors"] == 1


def test_sampling_and_a_full_queue_never_block_the_caller(candidate: str) -> None:
    off = ShadowMirror(candidate, "s", sample_rate=0.0, flush_s=3600, out=io.StringIO())
    off.active = True
    off.offer(["card"], ["card"])
    assert off._queue.qsize() == 0
    full = ShadowMirror(candidate, "s", max_pending=2, flush_s=3600, out=io.StringIO())  # not started: nobody drains
    full.active = True
    started = time.monotonic()
    for _ in range(50):
        full.offer(["card"], ["card"])
    assert time.monotonic() - started < 0.5
    assert full.dropped == 48
    with pytest.raises(ValueError):
        ShadowMirror(candidate, "s", sample_rate=1.5)


def test_copies_only_while_a_shadow_candidate_answers_the_probe(candidate: str) -> None:
    mirror = _started(ShadowMirror(candidate, "s", flush_s=3600, probe_s=0.05, out=io.StringIO()))
    assert mirror.active
    ROLE["role"] = "serving"  # a canary candidate: it must not get copies that would skew its live checks
    deadline = time.monotonic() + 5
    while mirror.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not mirror.active
    mirror.offer(["card"], ["card"])
    assert mirror._queue.qsize() == 0
    mirror.stop()
    # Nobody behind the URL (the canary service has no tasks): inactive, and the probe says why quickly.
    nobody = ShadowMirror("http://127.0.0.1:9", "s", timeout_s=0.5, out=io.StringIO())
    with httpx.Client(timeout=0.5) as client:
        assert nobody.probe(client) is False


def test_built_from_the_serving_settings_only_when_it_should_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESTEIRA_SHADOW_URL", raising=False)
    monkeypatch.delenv("ESTEIRA_SERVING_ROLE", raising=False)
    assert ShadowMirror.from_settings(ServingSettings.from_env()) is None
    monkeypatch.setenv("ESTEIRA_SHADOW_URL", "http://canary.esteira.internal:8080/")
    monkeypatch.setenv("ESTEIRA_SHADOW_SAMPLE_RATE", "0.25")
    mirror = ShadowMirror.from_settings(ServingSettings.from_env())
    assert mirror is not None and mirror.url == "http://canary.esteira.internal:8080" and mirror.sample_rate == 0.25
    monkeypatch.setenv("ESTEIRA_SERVING_ROLE", "shadow")  # the candidate itself never copies
    assert ShadowMirror.from_settings(ServingSettings.from_env()) is None
    monkeypatch.setenv("ESTEIRA_SERVING_ROLE", "canary")
    with pytest.raises(ValueError, match="ESTEIRA_SERVING_ROLE"):
        ServingSettings.from_env()
