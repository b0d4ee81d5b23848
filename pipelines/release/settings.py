"""What a release is configured with: the strategy, the canary's steps and the bars a candidate must clear."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar, Self

from model.contract import contract
from model.settings import EsteiraSettings, setting
from pipelines import aws

STRATEGIES = ("all_at_once", "canary", "shadow")
KINDS = ("http_5xx", "latency_p99", "low_confidence", "prediction_drift")


class CanaryNotReady(RuntimeError):
    """Too little traffic reached the candidate to judge it yet; the state machine asks again."""


class CanarySettings(EsteiraSettings):
    """Where the canary lives and the bars it must clear. A breach of any one bar rolls the release back."""

    doc_title: ClassVar[str] = "Canary and shadow releases (pipelines/release/settings.py `CanarySettings`)"

    canary_service: str = setting(
        "",
        env="ESTEIRA_CANARY_SERVICE",
        default_doc="<ESTEIRA_ECS_SERVICE>-canary",
        description="ECS service for the candidate.",
    )
    listener_arn: str = setting(
        "", env="ESTEIRA_LISTENER_ARN", description="ALB listener whose default action forwards to both target groups."
    )
    stable_target_group_arn: str = setting(
        "", env="ESTEIRA_STABLE_TARGET_GROUP_ARN", description="Target group of the stable service."
    )
    canary_target_group_arn: str = setting(
        "", env="ESTEIRA_CANARY_TARGET_GROUP_ARN", description="Target group of the canary service."
    )
    desired_count: int = setting(
        1, env="ESTEIRA_CANARY_DESIRED_COUNT", ge=1, description="Candidate tasks while a canary runs."
    )
    namespace: str = setting(
        contract().metrics_namespace,
        env="ESTEIRA_METRICS_NAMESPACE",
        description="CloudWatch namespace of the metrics.",
    )
    metrics_service: str = setting(
        "",
        env="ESTEIRA_METRICS_SERVICE",
        default_doc="<ESTEIRA_ECS_SERVICE>",
        description="The Service dimension the serving tasks emit.",
    )
    alarm_prefix: str = setting(
        f"esteira{contract().alarms.canary_prefix}",
        env="ESTEIRA_CANARY_ALARM_PREFIX",
        description="Per-version alarms are <prefix>-v<version>-<kind>.",
    )
    alarm_topic_arn: str = setting(
        "",
        env="ESTEIRA_CANARY_ALARM_TOPIC_ARN",
        default_doc="<ESTEIRA_SNS_TOPIC_ARN>",
        description="Alarm actions (SNS), optional.",
    )
    max_5xx_rate: float = setting(
        0.01,
        env="ESTEIRA_CANARY_MAX_5XX_RATE",
        ge=0.0,
        le=1.0,
        description="Bar: the candidate's share of 5xx answers.",
    )
    max_5xx_count: int = setting(
        5, env="ESTEIRA_CANARY_MAX_5XX_COUNT", ge=0, description="Per-version alarm: 5xx answers per minute."
    )
    max_p99_ms: float = setting(
        500.0, env="ESTEIRA_CANARY_MAX_P99_MS", gt=0.0, description="Bar: the candidate's p99 latency."
    )
    max_low_confidence_rate: float = setting(
        0.5,
        env="ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE",
        ge=0.0,
        le=1.0,
        description="Bar: the candidate's share of low-confidence predictions.",
    )
    max_prediction_drift: float = setting(
        0.2,
        env="ESTEIRA_CANARY_MAX_PREDICTION_DRIFT",
        ge=0.0,
        le=1.0,
        description="Bar: Jensen-Shannon divergence (base 2, 0..1) of the candidate's predictions from the "
        "champion's...",
    )
    drift_p_value: float = setting(
        0.001,
        env="ESTEIRA_CANARY_DRIFT_P_VALUE",
        ge=0.0,
        le=1.0,
        description="...counted only when unlikely to be sampling noise (permutation-test p-value below this): with "
        "10-50 candidate requests per step, noise alone gives JS of 0.1-0.3 over many intents.",
    )
    min_requests: int = setting(
        30,
        env="ESTEIRA_CANARY_MIN_REQUESTS",
        ge=0,
        description="Below this many candidate requests in a bake window the canary is not ready: ask again.",
    )
    min_shadow_agreement: float = setting(
        0.0,
        env="ESTEIRA_SHADOW_MIN_AGREEMENT",
        ge=0.0,
        le=1.0,
        description="Reported; below it the shadow release is marked disagrees.",
    )

    @classmethod
    def from_env(cls, wf: aws.WorkflowSettings | None = None) -> Self:
        wf = wf or aws.WorkflowSettings.from_env()
        return cls.read_env(
            canary_service=f"{wf.service}-canary", metrics_service=wf.service, alarm_topic_arn=wf.sns_topic_arn
        )


def validate_steps(steps: Any) -> list[int]:
    """Traffic percentages for the candidate: strictly increasing integers in 1..100 ending at 100."""
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"canary_steps must be a non-empty list of percentages, got {steps!r}")
    out: list[int] = []
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int | float) or int(s) != s or not 1 <= s <= 100:
            raise ValueError(f"canary_steps: {s!r} is not an integer percentage in 1..100")
        out.append(int(s))
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"canary_steps must increase strictly, got {out}")
    if out[-1] != 100:
        raise ValueError(f"canary_steps must end at 100, got {out}")
    return out
