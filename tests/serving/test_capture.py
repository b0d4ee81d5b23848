"""The capture writer against a real moto S3 server: batching, partitions, retries, the bounded buffer."""

from __future__ import annotations

from typing import Any

from model.serving.capture import CaptureWriter
from tests.serving.conftest import read_capture, s3_client


def _records(n: int, version: str = "3", hour: str = "07") -> list[dict[str, Any]]:
    return [
        {
            "ts": f"2026-11-24T{hour}:00:00.000000Z",
            "request_id": f"r{version}-{hour}-{i}",
            "text": f"text {i}",
            "intent": "card_arrival",
            "confidence": 0.9,
            "model_version": version,
        }
        for i in range(n)
    ]


def test_capture_retries_while_s3_is_down_then_writes_everything_once(moto_s3: str) -> None:
    bucket = "capture-retry-test"
    writer = CaptureWriter(f"s3://{bucket}/p", endpoint_url=moto_s3, retries=10, max_buffer=1000)
    writer.add(_records(5) + _records(3, hour="08"))
    assert not writer.flush_once()  # the bucket does not exist yet: S3 "down"
    assert not writer.flush_once()
    assert writer.buffered == 8 and writer.dropped == 0 and writer.failures == 2
    s3_client(moto_s3).create_bucket(Bucket=bucket)
    writer.add(_records(2, version="4"))
    writer.close(timeout=10)
    captured = read_capture(moto_s3, bucket)
    keys = sorted(k.rsplit("/", 1)[0] for k in captured)
    assert keys == [
        "p/model_version=3/dt=2026-11-24/hour=07",
        "p/model_version=3/dt=2026-11-24/hour=08",
        "p/model_version=4/dt=2026-11-24/hour=07",
    ]
    ids = sorted(r["request_id"] for recs in captured.values() for r in recs)
    assert len(ids) == 10 and len(set(ids)) == 10 and writer.written == 10 and writer.dropped == 0


def test_capture_buffer_is_bounded_and_drops_are_counted(moto_s3: str) -> None:
    writer = CaptureWriter("s3://no-such-bucket-ever/p", endpoint_url=moto_s3, max_buffer=10, retries=0)
    writer.add(_records(25))
    assert writer.buffered == 10 and writer.dropped == 15
    writer.close(timeout=0.5)  # S3 never comes back: what is left is counted, not silently lost
    assert writer.dropped == 25 and writer.buffered == 0


def test_capture_sampling(moto_s3: str) -> None:
    writer = CaptureWriter("s3://unused/p", endpoint_url=moto_s3, sample_rate=0.0)
    writer.add(_records(50))
    assert writer.buffered == 0
    half = CaptureWriter("s3://unused/p", endpoint_url=moto_s3, sample_rate=0.5)
    half.add(_records(2000))
    assert 800 < half.buffered < 1200
