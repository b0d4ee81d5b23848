"""One applied stack per module with a champion serving behind its load balancer, and a load generator.

The stack is `tofu apply` of infra/terraform + dev.tfvars on the embedded AWS (tests/conftest.py
`deployed`). The champion gets there the way a user's first one does: one execution of the applied
state machine. Releases in a module then run one after another on the same stack (as they would in
an account), so the costly parts (the apply, the MLflow registry, the champion's serving process)
are paid once per module. Each test reads the champion before its release and asserts on what changed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from demo.canary import (
    LoadGenerator,
    ensure_metrics_interval,
    run_release,
    shuffled_labels,
    skewed_labels,
    weights_seen,
)
from localaws import LocalAWS
from localaws.applied import AppliedStack
from model.config import Settings
from pipelines import registry
from tests.conftest import deployed, explain

# Lenient offline gate: these tests are about what the live checks catch after the gate.
GATE = {
    "ESTEIRA_GATE_MIN_IMPROVEMENT": "-1",
    "ESTEIRA_GATE_MAX_INTENT_F1_DROP": "1",
    "ESTEIRA_GATE_MIN_ACCURACY": "0",
    "ESTEIRA_GATE_MIN_MACRO_F1": "0",
}
# Per-kind bars switched off so that a test isolates one alarm kind.
OFF = {
    "ESTEIRA_CANARY_MAX_5XX_RATE": "1",
    "ESTEIRA_CANARY_MAX_5XX_COUNT": "1000000",
    "ESTEIRA_CANARY_MAX_P99_MS": "1000000",
    "ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE": "1",
    "ESTEIRA_CANARY_MAX_PREDICTION_DRIFT": "1",
}


# The release settings of these tests, in every execution's input (ReleaseDefaults lets the input
# override Terraform's; dev's bake and shadow times are minutes long).
TIMES = {"canary_bake_seconds": 3, "shadow_seconds": 4}


@dataclass
class Release:
    stack: AppliedStack
    settings: Settings
    slice_files: dict[str, Path]
    texts: list[str]
    shuffled: Path
    skewed: Path
    variants: int = 0
    last_train: Path | None = None

    @property
    def aws(self) -> LocalAWS:
        return self.stack.local

    def champion(self) -> str | None:
        v = registry.version_by_alias(self.settings, registry.CHAMPION)
        return None if v is None else str(v.version)

    def tags(self, version: str) -> dict[str, str]:
        client = registry.client(self.settings)
        return dict(client.get_model_version(self.settings.registered_model_name, version).tags)

    def bars(self, **bars: str) -> None:
        """Set the canary_check Lambda's bars for the next release (all kinds on, unless OFF is passed)."""
        defaults = {
            "ESTEIRA_CANARY_MAX_5XX_RATE": "0.01",
            "ESTEIRA_CANARY_MAX_5XX_COUNT": "5",
            "ESTEIRA_CANARY_MAX_P99_MS": "2000",
            "ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE": "0.5",
            "ESTEIRA_CANARY_MAX_PREDICTION_DRIFT": "0.2",
        }
        self.stack.update_function_env("canary_check", **{**defaults, **bars})

    def release(
        self,
        name: str,
        train_data: Path | None = None,
        on_start: Callable[[str], None] | None = None,
        **inputs: Any,
    ) -> dict[str, Any]:
        """Run one execution with the load generator on; return what the tests assert on."""
        before = self.champion()
        load = LoadGenerator(self.stack.outputs["serving_url"], self.texts, clients=2, pause=0.005).start()
        time.sleep(0.5)
        self.last_train = train_data or self.variant()
        args = {
            "train_data": str(self.last_train),
            "eval_data": str(self.slice_files["test"]),
            "smoke_data": str(self.slice_files["test"]),
            **TIMES,
            **inputs,
        }
        execution = f"{name}-{uuid.uuid4().hex[:8]}"
        desc, states, events = run_release(self.stack, execution, args, timeout=400, on_start=on_start)
        traffic = load.stop()
        return {
            "desc": desc,
            "states": states,
            "events": events,
            "weights": weights_seen(events),
            "before": before,
            "after": self.champion(),
            "load": traffic,
            "notifications": self.stack.notifications(),
        }

    def variant(self) -> Path:
        """The training slice minus a few rows, different per call: a new dataset hash, so a new model
        version (the trainer reuses a version trained on identical data and parameters)."""
        self.variants += 1
        frame = pd.read_csv(self.slice_files["train"], dtype=str, keep_default_na=False)
        out = self.shuffled.parent / f"train-variant-{self.variants}.csv"
        frame.drop(index=range(self.variants * 3, self.variants * 3 + 3)).to_csv(out, index=False)
        return out

    def listener_weights(self) -> dict[str, int]:
        listener = self.aws.client("elbv2").describe_listeners(ListenerArns=[self.stack.outputs["listener_arn"]])
        groups = listener["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        roles = {v: k for k, v in self.stack.outputs["target_groups"].items()}
        return {roles[g["TargetGroupArn"]]: int(g["Weight"]) for g in groups}

    def service(self, name: str) -> dict[str, Any]:
        ecs = self.aws.client("ecs")
        return dict(ecs.describe_services(cluster=self.stack.cluster, services=[name])["services"][0])


@pytest.fixture(scope="module")
def release(slice_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with deployed(tmp_path_factory, "canary") as (stack, settings):
        # An operator's configuration: the gate on the function that applies it; on the one that judges the
        # live checks, a minimum sample small enough for a 3 s bake.
        stack.update_function_env("evaluate", **GATE)
        stack.update_function_env("canary_check", ESTEIRA_CANARY_MIN_REQUESTS="20")
        # The first champion, as a user's first execution makes it (dev deploys it all at once).
        first = {"train_data": str(slice_files["train"]), "eval_data": str(slice_files["test"]),
                 "smoke_data": str(slice_files["test"])}  # fmt: skip
        desc, states, _ = run_release(stack, f"first-champion-{uuid.uuid4().hex[:8]}", first, timeout=400)
        assert desc["status"] == "SUCCEEDED", f"{states}\n{explain(stack.local, desc['executionArn'])}"
        assert "Deploy" in states, states
        ensure_metrics_interval(stack)  # canary checks need fresh metrics: a 1 s EMF interval
        stack.notifications()  # drop what the first execution published
        tmp = tmp_path_factory.mktemp("canary")
        texts = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)["text"].tolist()
        shuffled = shuffled_labels(slice_files["train"], tmp / "shuffled.csv")
        skewed = skewed_labels(slice_files["train"], tmp / "skewed.csv")
        yield Release(stack, settings, slice_files, texts, shuffled, skewed)
