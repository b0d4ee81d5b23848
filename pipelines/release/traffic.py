"""Where requests go during a release: the listener's weights, the shadow mark and the candidate's service.

The listener's one forward action sends `100 - w` % to the stable target group and `w` % to the
canary one (ALB ModifyListener; the same call moves the embedded router's weights locally).
"""

from __future__ import annotations

from typing import Any

from model.config import Settings
from pipelines import aws
from pipelines.release.settings import CanarySettings

SHADOW_TAG = "esteira:shadow"


def set_weights(cs: CanarySettings, canary_percent: int, settings: Settings | None = None) -> None:
    """Point the listener's forward action at both target groups with these weights (stable gets the rest)."""
    if not (cs.listener_arn and cs.stable_target_group_arn and cs.canary_target_group_arn):
        raise LookupError("ESTEIRA_LISTENER_ARN, ESTEIRA_STABLE_/CANARY_TARGET_GROUP_ARN must be set for a canary")
    aws.client("elbv2", settings).modify_listener(
        ListenerArn=cs.listener_arn,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": cs.stable_target_group_arn, "Weight": 100 - canary_percent},
                        {"TargetGroupArn": cs.canary_target_group_arn, "Weight": canary_percent},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": False},
                },
            }
        ],
    )


def set_shadow(cs: CanarySettings, on: bool, settings: Settings | None = None) -> None:
    """Mark the canary target group as a shadow: whoever mirrors traffic (see docs/canary.md) reads this."""
    elb = aws.client("elbv2", settings)
    if on:
        elb.add_tags(ResourceArns=[cs.canary_target_group_arn], Tags=[{"Key": SHADOW_TAG, "Value": "on"}])
    else:
        elb.remove_tags(ResourceArns=[cs.canary_target_group_arn], TagKeys=[SHADOW_TAG])


def scale_candidate(wf: aws.WorkflowSettings, cs: CanarySettings, count: int, td: str | None, settings: Any) -> None:
    """The canary service's task count, and the candidate's revision when one is given."""
    kwargs: dict[str, Any] = {"cluster": wf.cluster, "service": cs.canary_service, "desiredCount": count}
    if td:
        kwargs["taskDefinition"] = td
    aws.client("ecs", settings).update_service(**kwargs)
