"""Pure parts of the service: request parsing, the micro-batcher, EMF aggregation, settings."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from typing import Any

import pytest

from model.serving.batching import BatcherClosed, MicroBatcher
from model.serving.contract import BadRequest, Contract
from model.serving.emf import Metrics
from model.serving.loader import ModelLoadError, resolve
from model.serving.settings import ServingSettings

S = ServingSettings(max_text_chars=10, max_batch=3, max_top_k=5)


def parse_predict(doc: Any, s: ServingSettings) -> tuple[list[str], bool, int]:
    return Contract(s).parse_predict(json.dumps(doc).encode())


def parse_explain(doc: Any, s: ServingSettings) -> tuple[str, int, str | None]:
    return Contract(s).parse_explain(json.dumps(doc).encode())


def test_parse_predict_accepts_and_names_fields() -> None:
    assert parse_predict({"text": "hi"}, S) == (["hi"], False, 3)
    assert parse_predict({"texts": ["a", "b"], "top_k": 5}, S) == (["a", "b"], True, 5)
    cases = [
        ({"texts": ["a", "b", "c", "d"]}, "texts"),
        ({"texts": ["a", "b" * 11]}, "texts[1]"),
        ({"text": "x", "top_k": 6}, "top_k"),
        ({"text": "x", "extra": 1}, "extra"),
        ({}, "text"),
    ]
    for doc, field in cases:
        with pytest.raises(BadRequest) as err:
            parse_predict(doc, S)
        assert err.value.field == field and 400 <= err.value.status < 500
    assert parse_explain({"text": "a", "intent": "x"}, S) == ("a", 8, "x")


def test_batcher_groups_concurrent_requests_within_bounds() -> None:
    sizes: list[int] = []

    def predict(texts: list[str], k: int) -> list[str]:
        sizes.append(len(texts))
        time.sleep(0.002)  # like a real predict, blocks the loop while it runs
        return [t.upper() for t in texts]

    async def main() -> list[tuple[str, list[str]]]:
        b = MicroBatcher(lambda: ("v1", predict), max_rows=16, max_wait_s=0.005)
        b.start()
        out = await asyncio.gather(*(b.submit([f"t{i}", f"u{i}"] if i % 5 == 0 else [f"t{i}"], 1) for i in range(100)))
        await b.close()
        return out

    results = asyncio.run(main())
    assert max(sizes) <= 16 and len(sizes) < 30 and sum(sizes) == 120
    for i, (tag, res) in enumerate(results):
        assert tag == "v1" and res[0] == f"T{i}" and (len(res) == 2) == (i % 5 == 0)


def test_batcher_wait_is_bounded_and_failures_fail_only_their_batch() -> None:
    calls = {"n": 0}

    def predict(texts: list[str], k: int) -> list[str]:
        calls["n"] += 1
        if "boom" in texts:
            raise ValueError("boom")
        return texts

    async def main() -> float:
        b = MicroBatcher(lambda: ("v", predict), max_rows=64, max_wait_s=0.01)
        b.start()
        start = time.perf_counter()
        await b.submit(["alone"], 1)
        waited = time.perf_counter() - start
        with pytest.raises(ValueError):
            await b.submit(["boom"], 1)
        assert (await b.submit(["after"], 1))[1] == ["after"]
        await b.close()
        with pytest.raises(RuntimeError):
            await b.submit(["closed"], 1)
        return waited

    assert asyncio.run(main()) < 0.2


def test_on_batch_sees_each_batch_once_and_cannot_fail_it() -> None:
    seen: list[tuple[str, list[str], list[str]]] = []

    def on_batch(tag: str, texts: list[str], results: list[str]) -> None:
        seen.append((tag, texts, results))
        if "boom" in texts:
            raise RuntimeError("bookkeeping failed")

    async def main() -> list[tuple[str, list[str]]]:
        b = MicroBatcher(lambda: ("v", lambda texts, k: [t.upper() for t in texts]), max_rows=8, on_batch=on_batch)
        b.start()
        out = await asyncio.gather(*(b.submit([f"t{i}"], 1) for i in range(5)), b.submit(["boom"], 1))
        await b.close()
        return out

    results = asyncio.run(main())
    assert results[-1] == ("v", ["BOOM"])  # answered although on_batch raised
    assert sorted(t for _, texts, _ in seen for t in texts) == sorted([f"t{i}" for i in range(5)] + ["boom"])
    assert all(tag == "v" and [t.upper() for t in texts] == res for tag, texts, res in seen)
    assert len(seen) < 6  # batches, not requests


def test_emf_aggregates_per_version_and_intent() -> None:
    out = io.StringIO()
    m = Metrics("svc", low_confidence=0.5, out=out, dropped_counter=lambda: 3)
    for i in range(100):
        m.record_request("7", 200, float(i))
    m.record_request("7", 422, 1.0)
    m.record_request("7", 500, 1.0)
    m.record_predictions("7", ["a", "a", "b"], [0.9, 0.4, 0.8], [10, 20, 30])
    assert m.flush() == 3
    docs = [json.loads(x) for x in out.getvalue().splitlines()]
    main = docs[0]
    assert main["RequestCount"] == 102 and main["Http4xx"] == 1 and main["Http5xx"] == 1
    assert 48 <= main["LatencyP50"] <= 52 and main["LatencyP99"] >= 97
    assert main["MeanConfidence"] == pytest.approx(0.7) and main["LowConfidenceRate"] == pytest.approx(1 / 3)
    assert main["MeanTextLength"] == 20 and main["CaptureDropped"] == 3
    assert {(d["Intent"], d["Predictions"]) for d in docs[1:]} == {("a", 2), ("b", 1)}
    assert m.flush() == 0  # a new interval starts empty; the drop counter reports deltas


def test_resolve_uris_and_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("models:/m/4") == ("models:/m/4", "4")
    assert resolve("/tmp/models/intent-v9") == ("/tmp/models/intent-v9", "intent-v9")
    assert resolve("s3://b/p/model", fallback_version="12") == ("s3://b/p/model", "12")
    with pytest.raises(ModelLoadError):
        resolve("")
    with pytest.raises(ModelLoadError):
        resolve("models:/m/latest/x")
    monkeypatch.setenv("CAPTURE_SAMPLE_RATE", "1.5")
    with pytest.raises(ValueError, match="CAPTURE_SAMPLE_RATE"):
        ServingSettings.from_env()


def test_a_model_failure_is_a_counted_json_500_not_a_hang() -> None:
    """The one way to get a 5xx: the model itself raising. It is answered, logged and counted."""
    from fastapi.testclient import TestClient

    from model.serving.app import create_app
    from model.serving.loader import LoadedModel
    from model.serving.state import ServingState

    class Broken:
        classes_ = ("a",)

        def predict(self, texts: list[str], top_k: int) -> list[object]:
            raise RuntimeError("broken model")

    settings = ServingSettings(model_uri="unused", metrics_interval_s=3600)
    state = ServingState(settings, loader=lambda uri, first: LoadedModel(Broken(), "9", uri, uri, 0.0))  # type: ignore[arg-type]
    with TestClient(create_app(settings, state), raise_server_exceptions=False) as client:
        for _ in range(50):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        resp = client.post("/predict", json={"text": "hello"})
        assert resp.status_code == 500 and resp.json()["error"] == "internal_error"
        assert client.post("/predict", json={"text": 3}).status_code == 422
        docs = state.metrics.documents()
    assert docs[0]["Http5xx"] == 1 and docs[0]["Http4xx"] == 1 and docs[0]["ModelVersion"] == "9"


def test_batcher_does_not_make_a_backlog_wait_again() -> None:
    """Requests that arrive while a (loop-blocking) batch runs form the next batch at once: no new wait.

    As in the service, the second request arrives on a socket while the first batch blocks the loop, and
    is read and queued only once the loop is free again.
    """
    starts: list[float] = []
    rx, tx = socket.socketpair()

    def predict(texts: list[str], k: int) -> list[str]:
        starts.append(time.perf_counter())
        if texts == ["a"]:
            tx.send(b"b")  # a request arrives while the batch runs
        time.sleep(0.05)  # blocks the loop, like a real inline batch
        return texts

    async def main() -> None:
        loop = asyncio.get_running_loop()
        b = MicroBatcher(lambda: ("v", predict), max_rows=64, max_wait_s=0.03)
        b.start()
        answered: list[asyncio.Future[Any]] = []

        def on_readable() -> None:
            text = rx.recv(16).decode()
            answered.append(asyncio.ensure_future(b.submit([text], 1)))

        loop.add_reader(rx.fileno(), on_readable)
        await b.submit(["a"], 1)
        while not answered:
            await asyncio.sleep(0.001)
        await answered[0]
        loop.remove_reader(rx.fileno())
        await b.close()

    try:
        asyncio.run(main())
    finally:
        rx.close()
        tx.close()
    assert len(starts) == 2
    # Had the batcher judged itself idle, the second would wait another 30 ms after the first batch.
    assert starts[1] - starts[0] < 0.05 + 0.02, starts


def test_submit_nowait_answers_each_callback_once_even_if_one_raises() -> None:
    answers: list[tuple[Any, Any, Any]] = []

    def done(tag: Any, results: Any, error: Any) -> None:
        answers.append((tag, results, error))
        if results == ["raise"]:
            raise RuntimeError("a callback failed")

    async def main() -> None:
        b = MicroBatcher(lambda: ("v", lambda texts, k: list(texts)), max_rows=8)
        b.start()
        for text in ("a", "raise", "b"):
            b.submit_nowait([text], 1, done)
        b.submit_nowait(["c", "d"], 1, done)
        await b.close()
        with pytest.raises(BatcherClosed):
            b.submit_nowait(["late"], 1, done)

    asyncio.run(main())
    assert answers == [("v", ["a"], None), ("v", ["raise"], None), ("v", ["b"], None), ("v", ["c", "d"], None)]
