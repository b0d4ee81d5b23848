"""The reference policy: which texts a new model's drift reference profile is built from.

A drift check asks "is today's traffic unlike the traffic this model was meant to serve?". So the
reference must describe that traffic, as the new model sees it (its own predictions, on texts it did
not train on):

- `evaluation`: the evaluation split. The only choice for the first model, which has no traffic yet.
- `recent-traffic`: requests the current champion served recently, minus every text in the new model's
  training data (the model is over-confident on rows it trained on, which would make all later traffic
  look like a confidence drop). After a drift alarm (the workflow input retrain_trigger sets), "recent"
  starts where the drift began (the drift state's `drift_since`), so the reference is the shifted
  traffic the retrain was for, and the retrained model's checks come back to quiet instead of
  alarming on the very shift it absorbed. Otherwise it is the last `hours` hours.
- `auto` (the default): `recent-traffic` when the champion has served at least `min_rows` such
  requests, else `evaluation`.

Dropping the trained-on texts keeps the traffic's mix when what is labelled is a random sample of the
traffic (as in the demo, and as a labelling queue should be); a queue that labels only some kinds of
request would thin those kinds out of the reference, and docs/drift.md says so.

A drift-triggered retrain is also tagged with the tests that fired on the model it replaces
(pipelines/retrain_effect.py follows them on the new model's first windows).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import boto3

from model.config import Settings
from pipelines import drift_state, registry, retrain_effect
from pipelines.drift_check import MAX_LOOKBACK, DriftSettings, read_window, split_uri  # one capture reader
from pipelines.retrain_trigger import REFERENCE_RECENT

log = logging.getLogger(__name__)

EVALUATION = "evaluation"
RECENT = REFERENCE_RECENT  # "recent-traffic": what retrain_trigger asks for
AUTO = "auto"
POLICIES = (AUTO, EVALUATION, RECENT)
MAX_ROWS = 5000  # a uniform sample of the recent traffic, like a drift check's
RECENT_HOURS = 24.0  # "recent" when no drift is under way


@dataclass
class ReferencePlan:
    policy: str  # what was used: evaluation or recent-traffic
    texts: list[str]
    source: str
    tags: dict[str, str] = field(default_factory=dict)


def plan(
    requested: str,
    eval_texts: Sequence[str],
    train_texts: Sequence[str],
    settings: Settings,
    *,
    min_rows: int = 200,
    now: dt.datetime | None = None,
) -> ReferencePlan:
    """Resolve the requested policy to the texts the reference profile is built from."""
    if requested not in POLICIES:
        raise ValueError(f"reference policy must be one of {', '.join(POLICIES)}, got {requested!r}")
    fallback = ReferencePlan(EVALUATION, list(eval_texts), "evaluation split", {"reference.policy": EVALUATION})
    if requested == EVALUATION:
        return fallback
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    if champion is None:
        fallback.tags["reference.note"] = "no champion yet: nothing served"
        return fallback

    ds = DriftSettings.from_env()
    version = str(champion.version)
    if not ds.capture_s3_uri:
        fallback.tags["reference.note"] = "ESTEIRA_CAPTURE_S3_URI is not set: no traffic to read"
        return fallback
    end = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    state = drift_state.DriftState(version)
    if ds.report_s3_uri:
        state = drift_state.load(s3, *split_uri(ds.report_s3_uri), version)
    tags: dict[str, str] = {}
    if requested == RECENT:  # an alarm started this retrain: follow up on what fired
        fired = (state.last_drift or {}).get("tests") or []
        tags |= {
            retrain_effect.TAG_REASON: retrain_effect.REASON_DRIFT,
            retrain_effect.TAG_TESTS: ",".join(sorted(fired)),
            retrain_effect.TAG_PREVIOUS: version,
        }
    since = end - dt.timedelta(hours=RECENT_HOURS)
    if requested == RECENT and state.drift_since:
        since = max(end - MAX_LOOKBACK, dt.datetime.fromisoformat(state.drift_since))
    records, _, _ = read_window(s3, ds.capture_s3_uri, version, since, end, MAX_ROWS)
    trained = set(train_texts)
    texts = [r["text"] for r in records if isinstance(r["text"], str) and r["text"] not in trained]  # None: dropped
    if len(texts) < min_rows:
        fallback.tags |= tags | {
            "reference.note": f"{len(texts)} recent requests of version {version} not in the training data "
            f"(fewer than {min_rows}): evaluation split instead"
        }
        log.warning("reference: %s", fallback.tags["reference.note"])
        return fallback
    source = f"version {version} traffic {since:%Y-%m-%dT%H:%M:%SZ}..{end:%Y-%m-%dT%H:%M:%SZ}"
    return ReferencePlan(
        RECENT,
        texts,
        source,
        tags
        | {
            "reference.policy": RECENT,
            "reference.source": source,
            "reference.rows": str(len(texts)),
            "reference.dropped_trained": str(len(records) - len(texts)),
        },
    )
