"""Amazon States Language checks that AWS applies before it accepts a state machine definition.

moto stores any JSON as a definition, so a state machine AWS rejects (`CreateStateMachine` answers
InvalidDefinition, the provider's `ValidateStateMachineDefinition` answers FAIL) would apply here and
fail on a user's first `tofu apply`. This module is the strictness moto lacks: the rules of the States
Language specification and of AWS's own checks that a definition we write can break. Each finding is
a `Diagnostic` with AWS's error code and a JSON-pointer location (`/States/Train/Retry/0`), the shape
ValidateStateMachineDefinition answers with. Warnings (AWS's NO_DOLLAR and the like) are not errors
in AWS and are not reported.

Covered: the top level (StartAt, States), the fields each state type allows and requires, Next/End,
transition targets, reachability and a terminal state in every scope (the machine, each Parallel
branch, each Map processor), unique state names, Retry and Catch (`States.ALL` alone and last, known
`States.*` error names, retrier fields and ranges), Choice rules, Wait, the JSONPath fields and the
`.$` payload keys (paths and intrinsic functions), Task resources and timeouts. JSONata states are
checked for their own field set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = "SCHEMA_VALIDATION_FAILED"

_STATE_TYPES = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
_COMMON = {"Type", "Comment", "QueryLanguage"}
_JSONPATH_IO = {"InputPath", "OutputPath"}
_FLOW = {"Next", "End"}
_ERRORS = {"Retry", "Catch"}
_JSONPATH_FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _JSONPATH_IO | _FLOW | {"Parameters", "Result", "ResultPath", "Assign"},
    "Task": _COMMON
    | _JSONPATH_IO
    | _FLOW
    | _ERRORS
    | {
        "Resource",
        "Parameters",
        "ResultPath",
        "ResultSelector",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
        "Assign",
    },
    "Choice": _COMMON | _JSONPATH_IO | {"Choices", "Default", "Assign"},
    "Wait": _COMMON | _JSONPATH_IO | _FLOW | {"Seconds", "Timestamp", "SecondsPath", "TimestampPath", "Assign"},
    "Succeed": _COMMON | _JSONPATH_IO,
    "Fail": _COMMON | {"Error", "Cause", "ErrorPath", "CausePath"},
    "Parallel": _COMMON
    | _JSONPATH_IO
    | _FLOW
    | _ERRORS
    | {"Branches", "Parameters", "ResultPath", "ResultSelector", "Assign"},
    "Map": _COMMON
    | _JSONPATH_IO
    | _FLOW
    | _ERRORS
    | {
        "Iterator",
        "ItemProcessor",
        "ItemsPath",
        "ItemReader",
        "ItemSelector",
        "ItemBatcher",
        "ResultWriter",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
        "Parameters",
        "ResultPath",
        "ResultSelector",
        "Assign",
    },
}
# JSONata states drop the path fields and take Arguments/Output instead.
_JSONATA_DROPPED = {
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "ItemsPath",
    "ItemSelector",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "Iterator",
}
_JSONATA_ADDED: dict[str, set[str]] = {
    "Pass": {"Output"},
    "Task": {"Arguments", "Output"},
    "Choice": {"Output"},
    "Wait": {"Output"},
    "Succeed": {"Output"},
    "Parallel": {"Arguments", "Output"},
    "Map": {"Items", "ItemSelector", "Output"},
}
_STATES_ERRORS = {
    "States.ALL",
    "States.BranchFailed",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
}
_INTRINSICS = {
    "States.Array",
    "States.ArrayContains",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayPartition",
    "States.ArrayRange",
    "States.ArrayUnique",
    "States.Base64Decode",
    "States.Base64Encode",
    "States.Format",
    "States.Hash",
    "States.JsonMerge",
    "States.JsonToString",
    "States.MathAdd",
    "States.MathRandom",
    "States.StringSplit",
    "States.StringToJson",
    "States.UUID",
}
_COMPARISONS: dict[str, type | tuple[type, ...]] = {"BooleanEquals": bool, "StringMatches": str}
for _kind, _value_type in (("String", str), ("Numeric", (int, float)), ("Timestamp", str)):
    for _op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals"):
        _COMPARISONS[f"{_kind}{_op}"] = _value_type
for _name in list(_COMPARISONS):
    if _name != "StringMatches":
        _COMPARISONS[f"{_name}Path"] = str
for _name in ("IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"):
    _COMPARISONS[_name] = bool
_RETRIER_FIELDS = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
_CATCHER_FIELDS = {"ErrorEquals", "Next", "ResultPath", "Comment", "Assign", "Output"}
_RESOURCE = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+$")
_PATH = re.compile(r"^\$\$?([A-Za-z_][A-Za-z0-9_]*)?((\.[^.\s\[\]]+)|(\[[^\]]*\]))*$")
# The intrinsics AWS accepts in a Fail state's ErrorPath and CausePath (those that return a string).
_FAIL_PATH_INTRINSICS = {
    "States.Format",
    "States.JsonToString",
    "States.ArrayGetItem",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.UUID",
}
_INTRINSIC_CALL = re.compile(r"^(States\.[A-Za-z0-9]+)\s*\((.*)\)$", re.DOTALL)
_MAX_STATE_NAME = 80


@dataclass(frozen=True)
class Diagnostic:
    """One reason AWS would refuse the definition: its error code, JSON-pointer location and why."""

    code: str
    path: str
    message: str


def validate(definition: str | Mapping[str, Any]) -> list[Diagnostic]:
    """Every error AWS would report for this definition; an empty list means AWS accepts it."""
    if isinstance(definition, str):
        if not definition.strip():
            return [Diagnostic("MISSING_DESCRIPTION", "", "the definition is empty")]
        duplicates: list[str] = []
        try:
            document = json.loads(definition, object_pairs_hook=_pairs_hook(duplicates))
        except json.JSONDecodeError as err:
            return [Diagnostic("INVALID_JSON_DESCRIPTION", "", f"not JSON: {err}")]
        found = [Diagnostic("DUPLICATE_STATE_NAME", "", f"the key {key!r} appears twice") for key in duplicates]
    else:
        document, found = definition, []
    checker = _Checker()
    checker.machine(document)
    return found + checker.found


def _pairs_hook(duplicates: list[str]) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    return hook


class _Checker:
    """Walks one definition and collects the diagnostics; each scope is checked on its own."""

    def __init__(self) -> None:
        self.found: list[Diagnostic] = []
        self.names: dict[str, str] = {}

    def error(self, path: str, message: str, code: str = SCHEMA) -> None:
        self.found.append(Diagnostic(code, path, message))

    def machine(self, document: Any) -> None:
        if not isinstance(document, dict):
            self.error("", "the definition must be a JSON object")
            return
        language = document.get("QueryLanguage", "JSONPath")
        if language not in ("JSONPath", "JSONata"):
            self.error("/QueryLanguage", f"QueryLanguage must be JSONPath or JSONata, not {language!r}")
            language = "JSONPath"
        self.unknown_fields(
            "", document, {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
        )
        if "TimeoutSeconds" in document:
            self.positive_int("/TimeoutSeconds", document["TimeoutSeconds"], allow_zero=True)
        self.scope(
            "", document, {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}, language
        )

    def scope(self, path: str, scope: Any, allowed: set[str], language: str) -> None:
        """A machine, a Parallel branch or a Map processor: StartAt, States, reachability, an end."""
        if not isinstance(scope, dict):
            self.error(path, "must be an object with StartAt and States")
            return
        if path:
            self.unknown_fields(path, scope, allowed)
        states = scope.get("States")
        start = scope.get("StartAt")
        if not isinstance(states, dict) or not states:
            self.error(f"{path}/States", "States must be a non-empty object")
            return
        if not isinstance(start, str):
            self.error(f"{path}/StartAt", "StartAt must name a state")
        elif start not in states:
            self.error(
                f"{path}/StartAt", f"StartAt names {start!r}, which is not a state here", "MISSING_TRANSITION_TARGET"
            )
        edges: dict[str, list[str]] = {}
        terminal = False
        for name, state in states.items():
            where = f"{path}/States/{name}"
            self.state_name(where, name)
            edges[name] = self.state(where, state, set(states), language)
            if isinstance(state, dict) and (state.get("Type") in ("Succeed", "Fail") or state.get("End") is True):
                terminal = True
        if not terminal:
            self.error(
                f"{path}/States", "no state ends the execution (Succeed, Fail or End: true)", "MISSING_END_STATE"
            )
        if isinstance(start, str) and start in states:
            reached = {start}
            todo = [start]
            while todo:
                for target in edges.get(todo.pop(), []):
                    if target in states and target not in reached:
                        reached.add(target)
                        todo.append(target)
            for name in states:
                if name not in reached:
                    self.error(f"{path}/States/{name}", f"state {name!r} is not reachable from {start!r}")

    def state_name(self, where: str, name: str) -> None:
        if not name or len(name) > _MAX_STATE_NAME:
            self.error(where, f"a state name has 1 to {_MAX_STATE_NAME} characters", "INVALID_STATE_NAME")
        if name in self.names:
            self.error(where, f"state {name!r} is also defined at {self.names[name]}", "DUPLICATE_STATE_NAME")
        else:
            self.names[name] = where

    def state(self, where: str, state: Any, names: set[str], language: str) -> list[str]:
        """Check one state and return the names it can transition to."""
        if not isinstance(state, dict):
            self.error(where, "a state must be an object")
            return []
        kind = state.get("Type")
        if kind not in _STATE_TYPES:
            self.error(f"{where}/Type", f"Type must be one of {', '.join(_STATE_TYPES)}, not {kind!r}")
            return []
        language = state.get("QueryLanguage", language)
        if language not in ("JSONPath", "JSONata"):
            self.error(f"{where}/QueryLanguage", f"QueryLanguage must be JSONPath or JSONata, not {language!r}")
            language = "JSONPath"
        allowed = set(_JSONPATH_FIELDS[kind])
        if language == "JSONata":
            allowed = (allowed - _JSONATA_DROPPED) | _JSONATA_ADDED.get(kind, set())
        self.unknown_fields(where, state, allowed)
        targets: list[str] = []
        if "Next" in allowed:
            targets += self.flow(where, state, names)
        if kind == "Task":
            self.task(where, state)
        elif kind == "Choice":
            targets += self.choice(where, state, names, language)
        elif kind == "Wait":
            self.wait(where, state)
        elif kind == "Parallel":
            self.parallel(where, state, language)
        elif kind == "Map":
            self.map(where, state, language)
        if "Retry" in state:
            self.retriers(f"{where}/Retry", state["Retry"])
        if "Catch" in state:
            targets += self.catchers(f"{where}/Catch", state["Catch"], names)
        if language == "JSONPath":
            self.paths(where, state)
        return targets

    def flow(self, where: str, state: dict[str, Any], names: set[str]) -> list[str]:
        has_next, end = "Next" in state, state.get("End")
        if "End" in state and not isinstance(end, bool):
            self.error(f"{where}/End", "End must be a boolean")
        if has_next and end is True:
            self.error(where, "a state has either Next or End: true, not both")
        elif not has_next and end is not True:
            self.error(where, "the state needs Next or End: true")
        if has_next:
            return self.target(f"{where}/Next", state["Next"], names)
        return []

    def target(self, where: str, name: Any, names: set[str]) -> list[str]:
        if not isinstance(name, str):
            self.error(where, "a transition names a state")
            return []
        if name not in names:
            self.error(where, f"{name!r} is not a state in this scope", "MISSING_TRANSITION_TARGET")
        return [name]

    def task(self, where: str, state: dict[str, Any]) -> None:
        resource = state.get("Resource")
        if not isinstance(resource, str):
            self.error(f"{where}/Resource", "a Task needs a Resource ARN")
        elif not _RESOURCE.match(resource):
            self.error(f"{where}/Resource", f"{resource!r} is not a resource ARN", "INVALID_RESOURCE")
        for field in ("TimeoutSeconds", "HeartbeatSeconds"):
            if field in state:
                self.positive_int(f"{where}/{field}", state[field])
            if field in state and f"{field}Path" in state:
                self.error(where, f"{field} and {field}Path are exclusive")
        timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
        if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
            self.error(f"{where}/HeartbeatSeconds", "HeartbeatSeconds must be smaller than TimeoutSeconds")

    def wait(self, where: str, state: dict[str, Any]) -> None:
        given = [f for f in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if f in state]
        if len(given) != 1:
            self.error(where, "a Wait has exactly one of Seconds, Timestamp, SecondsPath or TimestampPath")
        if "Seconds" in state:
            self.positive_int(f"{where}/Seconds", state["Seconds"], allow_zero=True)

    def parallel(self, where: str, state: dict[str, Any], language: str) -> None:
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            self.error(f"{where}/Branches", "a Parallel needs a non-empty Branches array")
            return
        for i, branch in enumerate(branches):
            self.scope(f"{where}/Branches/{i}", branch, {"StartAt", "States", "Comment", "QueryLanguage"}, language)

    def map(self, where: str, state: dict[str, Any], language: str) -> None:
        given = [f for f in ("Iterator", "ItemProcessor") if f in state]
        if len(given) != 1:
            self.error(where, "a Map has exactly one of ItemProcessor or Iterator")
            return
        field = given[0]
        allowed = {"StartAt", "States", "Comment", "QueryLanguage", "ProcessorConfig"}
        self.scope(f"{where}/{field}", state[field], allowed, language)
        for bound in ("MaxConcurrency", "ToleratedFailureCount"):
            if bound in state:
                self.positive_int(f"{where}/{bound}", state[bound], allow_zero=True)

    def choice(self, where: str, state: dict[str, Any], names: set[str], language: str) -> list[str]:
        choices = state.get("Choices")
        targets: list[str] = []
        if not isinstance(choices, list) or not choices:
            self.error(f"{where}/Choices", "a Choice needs a non-empty Choices array")
        else:
            for i, rule in enumerate(choices):
                targets += self.rule(f"{where}/Choices/{i}", rule, names, language, top=True)
        if "Default" in state:
            targets += self.target(f"{where}/Default", state["Default"], names)
        return targets

    def rule(self, where: str, rule: Any, names: set[str], language: str, *, top: bool) -> list[str]:
        """A Choice rule: Next only at the top, either a combinator or one comparison on a Variable."""
        if not isinstance(rule, dict):
            self.error(where, "a choice rule must be an object")
            return []
        targets: list[str] = []
        if top:
            if "Next" not in rule:
                self.error(where, "a top-level choice rule needs Next")
            else:
                targets = self.target(f"{where}/Next", rule["Next"], names)
        elif "Next" in rule:
            self.error(f"{where}/Next", "a nested choice rule cannot have Next")
        extra = {"Comment"} | ({"Next", "Assign", "Output"} if top else set())
        if language == "JSONata":
            self.unknown_fields(where, rule, {"Condition"} | extra)
            if not isinstance(rule.get("Condition"), (str, bool)):
                self.error(f"{where}/Condition", "a JSONata choice rule needs a Condition")
            return targets
        combinators = [op for op in ("And", "Or", "Not") if op in rule]
        operators = [op for op in rule if op in _COMPARISONS]
        if combinators:
            self.unknown_fields(where, rule, set(combinators) | extra)
            if len(combinators) > 1:
                self.error(where, "a choice rule has one of And, Or or Not")
            for op in combinators:
                inner = rule[op]
                if op == "Not":
                    self.rule(f"{where}/Not", inner, names, language, top=False)
                elif not isinstance(inner, list) or not inner:
                    self.error(f"{where}/{op}", f"{op} needs a non-empty array of rules")
                else:
                    for i, sub in enumerate(inner):
                        self.rule(f"{where}/{op}/{i}", sub, names, language, top=False)
            return targets
        self.unknown_fields(where, rule, {"Variable"} | set(_COMPARISONS) | extra)
        variable = rule.get("Variable")
        if not isinstance(variable, str) or not _PATH.match(variable):
            self.error(f"{where}/Variable", f"Variable must be a JSONPath, not {variable!r}")
        if len(operators) != 1:
            self.error(where, "a choice rule has exactly one comparison operator")
            return targets
        op = operators[0]
        value = rule[op]
        expected = _COMPARISONS[op]
        if isinstance(value, bool) and expected is not bool:
            self.error(f"{where}/{op}", f"{op} does not compare booleans")
        elif not isinstance(value, expected):
            self.error(f"{where}/{op}", f"{op} has the wrong type of value: {value!r}")
        elif op.endswith("Path") and not _PATH.match(str(value)):
            self.error(f"{where}/{op}", f"{op} must be a JSONPath, not {value!r}")
        return targets

    def retriers(self, where: str, retriers: Any) -> None:
        if not isinstance(retriers, list):
            self.error(where, "Retry must be an array")
            return
        for i, retrier in enumerate(retriers):
            at = f"{where}/{i}"
            if not isinstance(retrier, dict):
                self.error(at, "a retrier must be an object")
                continue
            self.unknown_fields(at, retrier, _RETRIER_FIELDS)
            self.error_equals(at, retrier, last=i == len(retriers) - 1, what="retrier")
            for field in ("IntervalSeconds", "MaxDelaySeconds"):
                if field in retrier:
                    self.positive_int(f"{at}/{field}", retrier[field])
            if "MaxAttempts" in retrier:
                self.positive_int(f"{at}/MaxAttempts", retrier["MaxAttempts"], allow_zero=True)
            rate = retrier.get("BackoffRate", 1.0)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 1.0:
                self.error(f"{at}/BackoffRate", f"BackoffRate must be a number >= 1.0, not {rate!r}")
            if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
                self.error(f"{at}/JitterStrategy", "JitterStrategy is FULL or NONE")

    def catchers(self, where: str, catchers: Any, names: set[str]) -> list[str]:
        if not isinstance(catchers, list):
            self.error(where, "Catch must be an array")
            return []
        targets: list[str] = []
        for i, catcher in enumerate(catchers):
            at = f"{where}/{i}"
            if not isinstance(catcher, dict):
                self.error(at, "a catcher must be an object")
                continue
            self.unknown_fields(at, catcher, _CATCHER_FIELDS)
            self.error_equals(at, catcher, last=i == len(catchers) - 1, what="catcher")
            if "Next" not in catcher:
                self.error(at, "a catcher needs Next")
            else:
                targets += self.target(f"{at}/Next", catcher["Next"], names)
            if "ResultPath" in catcher:
                self.path_field(f"{at}/ResultPath", catcher["ResultPath"], nullable=True)
        return targets

    def error_equals(self, at: str, handler: dict[str, Any], *, last: bool, what: str) -> None:
        errors = handler.get("ErrorEquals")
        if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
            self.error(f"{at}/ErrorEquals", "ErrorEquals must be a non-empty array of error names")
            return
        for j, name in enumerate(errors):
            if name.startswith("States.") and name not in _STATES_ERRORS:
                self.error(f"{at}/ErrorEquals/{j}", f"{name!r} is not a States error name")
        if "States.ALL" in errors:
            if len(errors) > 1:
                self.error(f"{at}/ErrorEquals", "States.ALL must appear alone in ErrorEquals")
            if not last:
                self.error(f"{at}/ErrorEquals", f"States.ALL must be in the last {what}")

    def paths(self, where: str, state: dict[str, Any]) -> None:
        """JSONPath fields and `.$` payload keys: AWS parses both when the definition is created."""
        for field, value in state.items():
            if field in ("InputPath", "OutputPath", "ResultPath"):
                self.path_field(f"{where}/{field}", value, nullable=True)
            elif field in ("ErrorPath", "CausePath") and isinstance(value, str) and _INTRINSIC_CALL.match(value):
                self.fail_intrinsic(f"{where}/{field}", value)
            elif field.endswith("Path"):
                self.path_field(f"{where}/{field}", value, nullable=False)
        for field in ("Parameters", "ResultSelector", "ItemSelector", "Credentials"):
            if field in state:
                self.payload(f"{where}/{field}", state[field])

    def path_field(self, where: str, value: Any, *, nullable: bool) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str) or not _PATH.match(value):
            self.error(where, f"{value!r} is not a valid JSONPath")

    def fail_intrinsic(self, where: str, value: str) -> None:
        """A Fail state's ErrorPath/CausePath may be one of the intrinsics that return a string."""
        call = _INTRINSIC_CALL.match(value.strip())
        assert call is not None
        if call.group(1) not in _FAIL_PATH_INTRINSICS:
            self.error(where, f"{call.group(1)} does not return a string; {where.rsplit('/', 1)[-1]} takes one of "
                       f"{', '.join(sorted(_FAIL_PATH_INTRINSICS))}")  # fmt: skip
        elif not _balanced(call.group(2)):
            self.error(where, f"the arguments of {call.group(1)} are not balanced")

    def payload(self, where: str, value: Any) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.payload(f"{where}/{i}", item)
        if not isinstance(value, dict):
            return
        for key, item in value.items():
            if key.endswith(".$"):
                self.dynamic_value(f"{where}/{key}", item)
            else:
                self.payload(f"{where}/{key}", item)

    def dynamic_value(self, where: str, value: Any) -> None:
        if not isinstance(value, str):
            self.error(where, "a key ending in .$ takes a JSONPath or an intrinsic function")
            return
        call = _INTRINSIC_CALL.match(value.strip())
        if call:
            name = call.group(1)
            if name not in _INTRINSICS:
                self.error(where, f"{name} is not an intrinsic function")
            elif not _balanced(call.group(2)):
                self.error(where, f"the arguments of {name} are not balanced")
        elif not _PATH.match(value):
            self.error(where, f"{value!r} is neither a JSONPath nor an intrinsic function")

    def positive_int(self, where: str, value: Any, *, allow_zero: bool = False) -> None:
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.error(where, f"must be an integer >= {low}, not {value!r}")

    def unknown_fields(self, where: str, obj: Mapping[str, Any], allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        for field in obj:
            if field not in allowed:
                self.error(f"{where}/{field}", f"the field {field!r} is not allowed here")


def _balanced(arguments: str) -> bool:
    """Parentheses outside single-quoted strings pair up (the intrinsic-function grammar)."""
    depth, quoted, escaped = 0, False, False
    for char in arguments:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quoted
