#!/usr/bin/env python3
"""esteira CDK app: `cdk synth -c environment=dev` (settings from infra/terraform/envs/<env>.tfvars).

Optional context: `-c overrides='{"serving_cpu": 2048}'` (JSON; same names as the Terraform variables).
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from esteira_cdk.config import load_config
from esteira_cdk.stack import EsteiraStack


def build(app: cdk.App) -> EsteiraStack:
    """Add the stack for the requested environment to app (tests call this on an in-process App)."""
    environment = app.node.try_get_context("environment") or "dev"
    config = load_config(environment, app.node.try_get_context("overrides"))
    return EsteiraStack(app, config.name, config=config)


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
