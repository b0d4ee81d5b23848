"""What one drift check hands to the next, for one model version: one small JSON object in S3.

Why state at all: a check must (1) start its window where the previous check ended, so every captured
request is judged exactly once whatever the schedule and the window setting; (2) carry the sequential
test's evidence (model/drift.py `Evidence`) across checks, which is how a persistent shift too small
for one window is caught; (3) remember when the current drift began, which is where a drift-triggered
retrain takes its reference traffic from (pipelines/reference.py); and (4) follow a drift-triggered
release through its first windows (pipelines/retrain_effect.py).

Stored at `<report root>/model_version=<v>/state.json`, beside that version's reports, read at the
start of a check and written at its end. A missing object means "first check of this version".
Concurrent checks of one version (a manual run during a scheduled one) can at worst judge a window
twice; they cannot lose requests, because the window end only moves forward after a verdict.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

STATE_FILE = "state.json"


@dataclass
class DriftState:
    model_version: str
    last_check_end: str | None = None  # ISO time: the next window starts here (exclusive)
    checks: int = 0  # checks with a verdict (windows judged)
    evidence: dict[str, Any] | None = None  # model.drift.Evidence.to_dict()
    drift_since: str | None = None  # start of the first window of the current run of drift verdicts
    last_drift: dict[str, Any] | None = None  # {"end", "tests", "report_uri"} of the latest drift verdict
    retrain_effect: dict[str, Any] | None = None  # pipelines/retrain_effect.py's record
    history: list[dict[str, Any]] = field(default_factory=list)  # last few verdicts, newest last

    HISTORY = 24

    def remember(self, entry: dict[str, Any]) -> None:
        self.history = [*self.history, entry][-self.HISTORY :]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), default=str, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, model_version: str) -> DriftState:
        data = json.loads(raw)
        if not isinstance(data, dict) or str(data.get("model_version")) != model_version:
            return cls(model_version)  # another version's state (or garbage): start over
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def window_start(self, end: dt.datetime, first_hours: float, max_lookback: dt.timedelta) -> dt.datetime:
        """Where this check's window starts: the previous check's end, else `first_hours` back; never
        further back than `max_lookback` (captures older than that may have expired)."""
        start = end - dt.timedelta(hours=first_hours)
        if self.last_check_end:
            start = dt.datetime.fromisoformat(self.last_check_end)
        return max(start, end - max_lookback)


def state_key(prefix: str, version: str) -> str:
    return f"{prefix}/model_version={version}/{STATE_FILE}".lstrip("/")


def load(s3: Any, bucket: str, prefix: str, version: str) -> DriftState:
    """The version's state, or a fresh one when none was written yet.

    Listed before it is read: whether a GetObject of a missing key answers NoSuchKey or AccessDenied
    depends on s3:ListBucket, and whether a prefix-scoped ListBucket counts for that is not documented;
    a listing with the key as prefix is the one call whose permission (s3:prefix) is certain.
    """
    key = state_key(prefix, version)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not any(obj["Key"] == key for obj in listed):
        return DriftState(version)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:  # deleted between the two calls
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return DriftState(version)
        raise
    return DriftState.from_json(body, version)


def save(s3: Any, bucket: str, prefix: str, state: DriftState) -> str:
    key = state_key(prefix, state.model_version)
    s3.put_object(Bucket=bucket, Key=key, Body=state.to_json(), ContentType="application/json")
    return f"s3://{bucket}/{key}"
