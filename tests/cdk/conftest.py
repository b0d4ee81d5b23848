"""Synthesise the CDK app once per session, in-process and offline (no AWS, no Docker, no cdk CLI)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[2]
CDK_DIR = REPO / "infra" / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))


# The two state machines (modules/workflow): the workflow, and the release it starts as a child.
WORKFLOW = "train-evaluate-deploy"
RELEASE = "release"


@dataclass
class Synth:
    """A synthesised stack: the raw template, the assertions view, and where it was written."""

    template: dict[str, Any]
    assertions: Any  # aws_cdk.assertions.Template
    path: Path
    seconds: float
    messages: list[str]  # synthesis warnings and errors (construct annotations)

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}

    def state_machine(self, suffix: str = WORKFLOW) -> dict[str, Any]:
        """The state machine named <name>-<suffix>: WORKFLOW (the parent) or RELEASE (the child it starts)."""
        (machine,) = [
            r
            for r in self.resources("AWS::StepFunctions::StateMachine").values()
            if str(r["Properties"].get("StateMachineName", "")).endswith(f"-{suffix}")
        ]
        return machine


def synthesise(outdir: Path, environment: str, overrides: dict[str, Any] | None = None) -> Synth:
    """Run app.build() on an App carrying cdk.json's context, as `cdk synth` would."""
    import time

    import app as cdk_app
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    context = json.loads((CDK_DIR / "cdk.json").read_text())["context"]
    context = {**context, "environment": environment}
    if overrides:
        context["overrides"] = json.dumps(overrides)
    started = time.monotonic()
    application = cdk.App(context=context, outdir=str(outdir))
    stack = cdk_app.build(application)
    assembly = application.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    template = artifact.template
    seconds = time.monotonic() - started
    # The warnings and errors, from the cloud assembly's manifest on disk: reading them through jsii
    # (`artifact.messages`) fails in some test orders ("Unknown interface: ...MetadataEntry").
    manifest = json.loads((Path(outdir) / "manifest.json").read_text())
    metadata = manifest["artifacts"][artifact.id].get("metadata", {})
    messages = [
        f"{entry['type']}: {path}: {entry.get('data')}"
        for path, entries in metadata.items()
        for entry in entries
        if entry.get("type") in ("aws:cdk:warning", "aws:cdk:error")
    ]
    return Synth(template, Template.from_json(template), Path(outdir) / artifact.template_file, seconds, messages)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """The dev environment (infra/terraform/envs/dev.tfvars), the one the parity test compares."""
    yield synthesise(tmp_path_factory.mktemp("cdk-dev"), "dev")


# Every optional part on: the EC2 training capacity and CodePipeline delivery (dev keeps enable_ci).
OPTIONS: dict[str, Any] = {"ec2_training": {"enabled": True}, "delivery": "codepipeline"}


@pytest.fixture(scope="session")
def dev_with_options(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """dev with OPTIONS (test_parity.py compares it with the Terraform plan of the same options)."""
    yield synthesise(tmp_path_factory.mktemp("cdk-dev-options"), "dev", OPTIONS)
