"""Render stepfunctions/*.asl.json the way Terraform's templatefile() does, for CloudFormation.

The templates (train_evaluate_deploy.asl.json, the workflow, and release.asl.json, the child it
starts) are valid JSON before rendering: every `${name}` placeholder sits inside a JSON string, and
values that are not strings travel as strings the ASL converts (`States.StringSplit('${train_subnets}',
',')`, `States.StringToJson('${canary_steps}')`). Both deployment paths fill the very same files, so
this renderer accepts only the subset of templatefile() features the ASL uses: `${name}`
interpolation and the `$${` escape. Anything else (`%{` directives, expressions) is refused, as is a
variable with no value, so a template change that CDK cannot honour fails at synth. Values are
inserted verbatim, as templatefile() does (a value with a quote would break the JSON, and
render_definition says so). Why not CloudFormation DefinitionSubstitutions: it does not know the
`$${` escape and would only find a missing variable at deploy; rendering here keeps templatefile()'s
semantics on both paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from .config import REPO_ROOT

ASL_PATH = REPO_ROOT / "stepfunctions" / "train_evaluate_deploy.asl.json"
# The child the workflow starts for each release (states:startExecution.sync:2).
RELEASE_ASL_PATH = REPO_ROOT / "stepfunctions" / "release.asl.json"

_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}")
_ESCAPE = "$${"
_SENTINEL = "\x00ESCAPED_INTERPOLATION\x00"


class TemplateError(ValueError):
    """The template uses something templatefile() would reject, or this renderer cannot render."""


def template_variables(template: str) -> set[str]:
    """Names the template interpolates (what Terraform and CDK must both provide)."""
    return set(_INTERPOLATION.findall(template.replace(_ESCAPE, _SENTINEL)))


def render(template: str, variables: Mapping[str, str]) -> str:
    """Interpolate ${name} with variables[name]; values are inserted verbatim, as templatefile does."""
    if "%{" in template:
        raise TemplateError("template directives (%{...}) are not supported")
    text = template.replace(_ESCAPE, _SENTINEL)
    missing = sorted(template_variables(template) - set(variables))
    if missing:
        raise TemplateError(f"no value for template variable(s): {', '.join(missing)}")
    rendered = _INTERPOLATION.sub(lambda m: variables[m.group(1)], text)
    # Inserted values may contain "${" (CDK tokens look like ${Token[...]}); only the original text
    # must be free of unrendered interpolations.
    leftover = _INTERPOLATION.sub("", text)
    if "${" in leftover:
        raise TemplateError(f"unsupported interpolation near {leftover[leftover.index('${') :][:40]!r}")
    return rendered.replace(_SENTINEL, "${")


def render_definition(variables: Mapping[str, str], path: Path = ASL_PATH) -> str:
    """Render the state machine definition and check that the result is JSON with States."""
    rendered = render(path.read_text(), variables)
    try:
        document = json.loads(rendered)
    except json.JSONDecodeError as err:
        raise TemplateError(f"{path.name} is not JSON after rendering: {err}") from err
    if not isinstance(document, dict) or "States" not in document or "StartAt" not in document:
        raise TemplateError(f"{path.name} has no StartAt/States")
    return rendered
