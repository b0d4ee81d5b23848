"""The capture keeps customers' data out of S3 while the prediction still sees the original message."""

from __future__ import annotations

import json
import time
from typing import Any

from model.classifier import Prediction
from model.redact import REDACTION_VERSION
from model.serving.settings import ServingSettings

CARD_TEXT = "my card 4111 1111 1111 1111 was declined, email a.b@c.co.uk"


class SeesCards:
    """A model whose answer shows whether it was given the original text (the card digits)."""

    classes_ = ("card_seen", "no_card")

    def predict(self, texts: list[str], top_k: int) -> list[Prediction]:
        out = []
        for t in texts:
            intent = "card_seen" if "4111 1111" in t else "no_card"
            out.append(Prediction(intent, 0.9, [(intent, 0.9)]))
        return out


class FakeS3:
    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []

    def put_object(self, **kw: Any) -> None:
        self.objects.append(kw)


def _serve_and_capture(**settings: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    from fastapi.testclient import TestClient

    from model.serving.app import create_app
    from model.serving.loader import LoadedModel
    from model.serving.state import ServingState

    cfg = ServingSettings(model_uri="unused", metrics_interval_s=3600, capture_s3_uri="s3://b/capture", **settings)
    state = ServingState(cfg, loader=lambda uri, first: LoadedModel(SeesCards(), "7", uri, uri, 0.0))  # type: ignore[arg-type]
    assert state.capture is not None
    fake = FakeS3()
    state.capture._s3 = fake
    with TestClient(create_app(cfg, state)) as client:
        for _ in range(100):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        answer = client.post("/predict", json={"text": CARD_TEXT}).json()
    # the app's shutdown closed the writer, which flushed through the fake
    records = [json.loads(line) for obj in fake.objects for line in obj["Body"].decode().splitlines()]
    return answer, records, fake.objects


def test_captured_record_is_redacted_while_the_answer_used_the_original() -> None:
    answer, records, objects = _serve_and_capture()
    assert answer["intent"] == "card_seen"  # the model saw the card digits
    assert len(records) == 1
    rec = records[0]
    assert rec["text"] == "my card [PII_CARD] was declined, email [PII_EMAIL]"
    assert rec["intent"] == "card_seen" and rec["redaction"] == f"redact/{REDACTION_VERSION}"
    assert "4111" not in objects[0]["Body"].decode() and "a.b@c" not in objects[0]["Body"].decode()
    assert objects[0]["Metadata"] == {"redaction": f"redact/{REDACTION_VERSION}"}


def test_hash_and_drop_modes_in_the_capture() -> None:
    _, hashed, _ = _serve_and_capture(capture_redaction="hash", capture_redaction_key="k" * 24)
    assert hashed[0]["text"].startswith("my card [PII_CARD_") and hashed[0]["redaction"].startswith("hash/")
    answer, dropped, _ = _serve_and_capture(capture_redaction="drop")
    assert answer["intent"] == "card_seen"
    assert dropped[0]["text"] is None and dropped[0]["intent"] == "card_seen"
    assert dropped[0]["redaction"] == f"drop/{REDACTION_VERSION}"
