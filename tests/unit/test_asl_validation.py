"""The embedded AWS refuses the state machine definitions AWS refuses.

The shipped template must pass, and each rule is shown failing on a definition that breaks it, so a
lenient validator (the stub moto amounts to) cannot pass this file.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from localaws.asl_validate import validate

STEPFUNCTIONS = Path(__file__).resolve().parents[2] / "stepfunctions"
ASL = STEPFUNCTIONS / "train_evaluate_deploy.asl.json"
RELEASE = STEPFUNCTIONS / "release.asl.json"
MACHINES = [ASL, RELEASE]
ARN = "arn:aws:lambda:us-east-1:123456789012:function:esteira-dev-x"


def rendered(template: str | None = None, path: Path = ASL) -> dict[str, Any]:
    """The template filled as templatefile() would, with stand-in values of the right shape."""
    text = path.read_text() if template is None else template
    json.loads(text)  # valid JSON before rendering: placeholders only inside strings
    text = re.sub(r"\$\{(\w+_arn)\}", ARN, text)
    text = re.sub(r"\$\{(canary_steps|canary_bake_seconds|shadow_seconds)\}", "[1]", text)
    text = re.sub(r"\$\{(\w+)\}", "value", text)
    return json.loads(text)


def machine(**states: Any) -> dict[str, Any]:
    first = next(iter(states))
    return {"StartAt": first, "States": states}


def codes(definition: Any) -> list[tuple[str, str]]:
    return [(d.code, d.path) for d in validate(definition)]


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_the_shipped_state_machines_are_valid(path: Path) -> None:
    assert validate(json.dumps(rendered(path=path))) == []


def test_states_all_before_another_retrier_is_refused() -> None:
    """The defect AWS found in CanaryAbort and Rollback: States.ALL must be alone and last."""
    document = rendered(path=RELEASE)
    state = document["States"]["CanaryAbort"]
    state["Retry"] = list(reversed(state["Retry"]))
    assert state["Retry"][0]["ErrorEquals"] == ["States.ALL"]
    assert ("SCHEMA_VALIDATION_FAILED", "/States/CanaryAbort/Retry/0/ErrorEquals") in codes(document)


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_every_retrier_and_catcher_in_the_template_ends_with_states_all_alone(path: Path) -> None:
    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            for field in ("Retry", "Catch"):
                for i, handler in enumerate(state.get(field, [])):
                    if "States.ALL" in handler["ErrorEquals"]:
                        assert handler["ErrorEquals"] == ["States.ALL"], (name, field)
                        assert i == len(state[field]) - 1, (name, field)
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(rendered(path=path)["States"])


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("", ("MISSING_DESCRIPTION", "")),
        ("{not json", ("INVALID_JSON_DESCRIPTION", "")),
        ({"States": {"A": {"Type": "Succeed"}}}, ("SCHEMA_VALIDATION_FAILED", "/StartAt")),
        ({"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}, ("MISSING_TRANSITION_TARGET", "/StartAt")),
        (machine(A={"Type": "Pass"}), ("SCHEMA_VALIDATION_FAILED", "/States/A")),
        (machine(A={"Type": "Pass", "Next": "B", "End": True}), ("SCHEMA_VALIDATION_FAILED", "/States/A")),
        (machine(A={"Type": "Pass", "Next": "Nowhere"}), ("MISSING_TRANSITION_TARGET", "/States/A/Next")),
        (machine(A={"Type": "Pass", "End": True}, B={"Type": "Succeed"}), ("SCHEMA_VALIDATION_FAILED", "/States/B")),
        (machine(A={"Type": "Pass", "Next": "A"}), ("MISSING_END_STATE", "/States")),
        (machine(A={"Type": "Dance", "End": True}), ("SCHEMA_VALIDATION_FAILED", "/States/A/Type")),
        (machine(A={"Type": "Succeed", "Next": "A"}), ("SCHEMA_VALIDATION_FAILED", "/States/A/Next")),
        (machine(A={"Type": "Task", "End": True}), ("SCHEMA_VALIDATION_FAILED", "/States/A/Resource")),
        (
            machine(A={"Type": "Task", "Resource": "my-function", "End": True}),
            ("INVALID_RESOURCE", "/States/A/Resource"),
        ),
        (
            machine(A={"Type": "Task", "Resource": ARN, "TimeoutSeconds": 10, "HeartbeatSeconds": 10, "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/HeartbeatSeconds"),
        ),
        (
            machine(A={"Type": "Task", "Resource": ARN, "Retry": [{"ErrorEquals": ["States.ALL", "X"]}], "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Retry/0/ErrorEquals"),
        ),
        (
            machine(A={"Type": "Task", "Resource": ARN, "Retry": [{"ErrorEquals": ["States.Oops"]}], "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Retry/0/ErrorEquals/0"),
        ),
        (
            machine(
                A={"Type": "Task", "Resource": ARN, "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}], "End": True}
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Retry/0/BackoffRate"),
        ),
        (
            machine(
                A={"Type": "Task", "Resource": ARN, "Retry": [{"ErrorEquals": ["X"], "MaxAttempt": 2}], "End": True}
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Retry/0/MaxAttempt"),
        ),
        (
            machine(
                A={
                    "Type": "Task",
                    "Resource": ARN,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}, {"ErrorEquals": ["X"], "Next": "B"}],
                    "End": True,
                },
                B={"Type": "Succeed"},
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Catch/0/ErrorEquals"),
        ),
        (
            machine(A={"Type": "Task", "Resource": ARN, "Catch": [{"ErrorEquals": ["X"]}], "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Catch/0"),
        ),
        (machine(A={"Type": "Choice", "Choices": []}), ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices")),
        (
            machine(
                A={"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": True}]}, B={"Type": "Succeed"}
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices/0"),
        ),
        (
            machine(
                A={"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "1", "Next": "B"}]},
                B={"Type": "Succeed"},
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices/0/NumericEquals"),
        ),
        (
            machine(
                A={
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.x", "StringEquals": "a", "BooleanEquals": True, "Next": "B"}],
                },
                B={"Type": "Succeed"},
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices/0"),
        ),
        (
            machine(
                A={
                    "Type": "Choice",
                    "Choices": [{"And": [{"Variable": "$.x", "IsPresent": True, "Next": "B"}], "Next": "B"}],
                },
                B={"Type": "Succeed"},
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices/0/And/0/Next"),
        ),
        (
            machine(
                A={"Type": "Choice", "Choices": [{"Variable": "x", "IsPresent": True, "Next": "B"}]},
                B={"Type": "Succeed"},
            ),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Choices/0/Variable"),
        ),
        (machine(A={"Type": "Wait", "End": True}), ("SCHEMA_VALIDATION_FAILED", "/States/A")),
        (
            machine(A={"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A"),
        ),
        (
            machine(A={"Type": "Pass", "InputPath": "input", "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/InputPath"),
        ),
        (
            machine(A={"Type": "Pass", "Parameters": {"x.$": "input.x"}, "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Parameters/x.$"),
        ),
        (
            machine(A={"Type": "Pass", "Parameters": {"x.$": "States.Nope('a')"}, "End": True}),
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Parameters/x.$"),
        ),
        (
            machine(A={"Type": "Parallel", "Branches": [machine(B={"Type": "Pass", "Next": "C"})], "End": True}),
            ("MISSING_TRANSITION_TARGET", "/States/A/Branches/0/States/B/Next"),
        ),
        (
            machine(A={"Type": "Parallel", "Branches": [machine(A={"Type": "Succeed"})], "End": True}),
            ("DUPLICATE_STATE_NAME", "/States/A/Branches/0/States/A"),
        ),
        (machine(A={"Type": "Map", "End": True}), ("SCHEMA_VALIDATION_FAILED", "/States/A")),
        ('{"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "A": {"Type": "Fail"}}}', ("DUPLICATE_STATE_NAME", "")),
        (
            {
                "StartAt": "A",
                "QueryLanguage": "JSONata",
                "States": {"A": {"Type": "Pass", "Parameters": {}, "End": True}},
            },
            ("SCHEMA_VALIDATION_FAILED", "/States/A/Parameters"),
        ),
    ],
)
def test_each_rule_refuses_what_aws_refuses(definition: Any, expected: tuple[str, str]) -> None:
    found = codes(definition)
    assert expected in found, found


def test_valid_constructs_pass() -> None:
    document = machine(
        Start={
            "Type": "Pass",
            "Parameters": {
                "id.$": "$$.Execution.Id",
                "n.$": "States.Format('{}-{}', $.a, $.b)",
                "list": [{"y.$": "$[0]"}],
            },
            "ResultPath": "$.start",
            "Next": "Pick",
        },
        Pick={
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": "$.start.n", "IsPresent": True}, "Next": "Fan"},
                {"Or": [{"Variable": "$.a", "NumericGreaterThanEquals": 1}], "Next": "Wait"},
            ],
            "Default": "Fan",
        },
        Wait={"Type": "Wait", "SecondsPath": "$.a", "Next": "Fan"},
        Fan={
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **machine(Item={"Type": "Succeed"})},
            "ResultPath": None,
            "Next": "Both",
        },
        Both={
            "Type": "Parallel",
            "Branches": [machine(Left={"Type": "Pass", "End": True}), machine(Right={"Type": "Fail", "Error": "E"})],
            "Retry": [
                {"ErrorEquals": ["Custom"], "MaxAttempts": 0},
                {"ErrorEquals": ["States.ALL"], "JitterStrategy": "FULL"},
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            "End": True,
        },
        Failed={"Type": "Fail", "Cause": "it failed"},
    )
    assert validate(copy.deepcopy(document)) == []


def test_a_fail_cause_may_be_a_string_intrinsic_but_not_any_intrinsic() -> None:
    """AWS's Fail state: CausePath/ErrorPath take a reference path or an intrinsic that returns a string."""
    ok = machine(F={"Type": "Fail", "Error": "E", "CausePath": "States.Format('x {}', $.a)"})
    assert codes(ok) == []
    bad = machine(F={"Type": "Fail", "Error": "E", "CausePath": "States.StringToJson($.a)"})
    assert [c for c in codes(bad) if c[1] == "/States/F/CausePath"]
