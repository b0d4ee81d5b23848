"""The AWS APIs that the Terraform provider calls and moto 5.2.5 does not answer, answered here.

Without them `tofu apply` of infra/terraform cannot create the state machine, the alarms, the
dashboard or the serving autoscaling, and the emulator would need a smaller stack than users apply.

- `states:ValidateStateMachineDefinition`: the provider validates every definition before
  CreateStateMachine. The answer comes from `localaws.asl_validate`, which applies AWS's rules, so a
  definition AWS would reject fails the apply here too (moto itself accepts any JSON). The same
  check guards CreateStateMachine and UpdateStateMachine, which AWS refuses with InvalidDefinition.
- `states:ListStateMachineVersions`, which the provider reads after creating a state machine.
- `application-autoscaling` Tags: RegisterScalableTarget's `Tags`, ListTagsForResource, TagResource
  and UntagResource (moto keeps no tags and raises NotImplementedError on the last three).
- CloudWatch's RPC-v2 CBOR protocol lives in `localaws.cbor` (a transport, not a missing action).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# application-autoscaling tags by scalable-target ARN (moto's state is per process, so is this).
_TAGS: dict[str, dict[str, str]] = {}


def validate_definition(definition: str) -> dict[str, Any]:
    """ValidateStateMachineDefinition's answer: result OK/FAIL and AWS-shaped diagnostics."""
    from localaws.asl_validate import validate

    diagnostics = [
        {"severity": "ERROR", "code": d.code, "message": d.message, "location": d.path} for d in validate(definition)
    ]
    return {"result": "FAIL" if diagnostics else "OK", "diagnostics": diagnostics, "truncated": False}


def _patch(cls: Any, name: str, method: Callable[..., Any], undo: list[Callable[[], None]]) -> None:
    had = name in cls.__dict__
    original = cls.__dict__.get(name)
    setattr(cls, name, method)

    def restore() -> None:
        if had:
            setattr(cls, name, original)
        else:
            delattr(cls, name)

    undo.append(restore)


def install() -> Callable[[], None]:
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
    from moto.core.exceptions import AWSError
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    undo: list[Callable[[], None]] = []

    class InvalidDefinition(AWSError):
        TYPE = "InvalidDefinition"
        STATUS = 400

    def validate_state_machine_definition(self: Any) -> Any:
        return ActionResult(validate_definition(self._get_param("definition") or ""))

    def list_state_machine_versions(self: Any) -> Any:
        machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
        versions = sorted(getattr(machine, "versions", {}).items(), reverse=True)  # newest first, as AWS lists
        return ActionResult(
            {
                "stateMachineVersions": [
                    {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for _, v in versions
                ]
            }
        )

    def refusing_invalid(original: Callable[..., Any]) -> Callable[..., Any]:
        def action(self: Any) -> Any:
            definition = self._get_param("definition")
            if definition is not None:
                answer = validate_definition(definition)
                if answer["result"] == "FAIL":
                    reasons = "; ".join(
                        f"{d['code']}: {d['message']} at {d['location']}" for d in answer["diagnostics"]
                    )
                    raise InvalidDefinition(f"Invalid State Machine Definition: '{reasons}'")
            return original(self)

        return action

    _patch(StepFunctionResponse, "validate_state_machine_definition", validate_state_machine_definition, undo)
    for name in ("create_state_machine", "update_state_machine"):
        _patch(StepFunctionResponse, name, refusing_invalid(getattr(StepFunctionResponse, name)), undo)
    _patch(StepFunctionResponse, "list_state_machine_versions", list_state_machine_versions, undo)

    register = ApplicationAutoScalingResponse.register_scalable_target

    def register_scalable_target(self: Any) -> str:
        body = register(self)
        tags = self._get_param("Tags") or {}
        if tags:
            _TAGS.setdefault(json.loads(body)["ScalableTargetARN"], {}).update(tags)
        return body

    def list_tags_for_resource(self: Any) -> str:
        return json.dumps({"Tags": _TAGS.get(self._get_param("ResourceARN"), {})})

    def tag_resource(self: Any) -> str:
        _TAGS.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags") or {})
        return "{}"

    def untag_resource(self: Any) -> str:
        tags = _TAGS.get(self._get_param("ResourceARN"), {})
        for key in self._get_param("TagKeys") or []:
            tags.pop(key, None)
        return "{}"

    _patch(ApplicationAutoScalingResponse, "register_scalable_target", register_scalable_target, undo)
    _patch(ApplicationAutoScalingResponse, "list_tags_for_resource", list_tags_for_resource, undo)
    _patch(ApplicationAutoScalingResponse, "tag_resource", tag_resource, undo)
    _patch(ApplicationAutoScalingResponse, "untag_resource", untag_resource, undo)

    def restore_all() -> None:
        for step in reversed(undo):
            step()
        _TAGS.clear()

    return restore_all
