"""contract.yaml: one definition of the shared names, and the Python readers use it (not copies of it)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from model import contract as contract_module
from model.contract import ContractError, contract, load, parse

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "stepfunctions" / "train_evaluate_deploy.asl.json"


def test_the_repository_file_is_the_one_read() -> None:
    c = contract()
    assert c.path == ROOT / "contract.yaml"
    assert not (ROOT / "model" / "contract.yaml").exists(), "model/contract.yaml is the images' copy; never commit it"


def test_the_asl_variables_are_the_templates() -> None:
    text = "".join(p.read_text() for p in ASL.parent.glob("*.asl.json")).replace("$${", "")
    assert set(contract().asl_variables) == set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def test_function_arn_variables_name_lambda_functions() -> None:
    c = contract()
    arns = [v.removesuffix("_function_arn") for v in c.asl_variables if v.endswith("_function_arn")]
    assert arns and set(arns) <= set(c.lambda_functions)
    for key in c.lambda_functions:
        assert (ROOT / "lambdas" / f"{key}.py").is_file(), f"no handler module lambdas/{key}.py"


def test_model_health_alarms_are_the_retraining_prefix() -> None:
    alarms = contract().alarms
    model_health = {"drift", "low_confidence"}
    for kind, suffix in vars(alarms.suffixes).items():
        starts = f"-{suffix}".startswith(alarms.retrain_prefix)
        assert starts == (kind in model_health), f"{kind}: {suffix}"
    assert not alarms.canary_prefix.startswith(alarms.retrain_prefix), "a canary alarm must never retrain"
    assert alarms.name("esteira-dev", "drift") == "esteira-dev-model-drift"


# Set by both deployments for people reading a task's or function's configuration, read by no step.
INFORMATIONAL = {
    "ESTEIRA_ENV": "which deployment (<project>-<environment>) a function belongs to",
    "ESTEIRA_TASK_FAMILY": "the deploy step registers revisions of the running service's own task definition",
    "METRICS_NAMESPACE": "the service publishes to the contract's namespace; shown next to ESTEIRA_SERVICE_NAME",
}


def test_environment_names_are_read_by_the_code() -> None:
    """Every name the deployments set is read in model/, pipelines/ or lambdas/, or is listed as informational."""
    sources = " ".join(p.read_text() for d in ("model", "pipelines", "lambdas") for p in (ROOT / d).rglob("*.py"))
    c = contract()
    unread = {n for n in (*c.workflow_environment, *c.serving_environment) if f'"{n}"' not in sources}
    assert unread == set(INFORMATIONAL), f"set by Terraform and CDK but read nowhere: {sorted(unread)}"


def test_the_image_variable_is_read_from_the_contract() -> None:
    """The stack tells every container and function its image under contract.yaml image_variable (set per
    resource, so in neither environment list); the code reads it through the contract, never by name."""
    c = contract()
    assert c.image_variable not in (*c.workflow_environment, *c.serving_environment)
    sources = " ".join(p.read_text() for d in ("model", "pipelines", "lambdas") for p in (ROOT / d).rglob("*.py"))
    assert ".image_variable" in sources, "no code reads contract().image_variable"
    assert f'"{c.image_variable}"' not in sources, "read it as contract().image_variable, not by its name"


# ---- the readers take the names from the contract


def test_emf_documents_use_the_contract_names() -> None:
    from model.serving.emf import Metrics

    c = contract()
    metrics = Metrics("svc", out=io.StringIO())
    metrics.record_request("7", 200, 12.0)
    metrics.record_predictions("7", ["card_arrival"], [0.3], [20])
    docs = metrics.documents(timestamp_ms=0)
    version_doc, intent_doc = docs
    (spec,) = version_doc["_aws"]["CloudWatchMetrics"]
    assert spec["Namespace"] == c.metrics_namespace == "Esteira"
    assert spec["Dimensions"] == [["Service", "ModelVersion"], ["Service"]]
    names = {m["Name"] for m in spec["Metrics"]}
    assert {c.metrics.request_count, c.metrics.latency_p99, c.metrics.low_confidence_rate} <= names
    assert names <= set(vars(c.metrics).values())
    assert intent_doc["Intent"] == "card_arrival" and intent_doc[c.metrics.predictions] == 1


def test_capture_keys_follow_the_contract_layout() -> None:
    from model.serving.capture import CaptureWriter

    class S3:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def put_object(self, **kwargs: object) -> None:
            self.keys.append(str(kwargs["Key"]))

    s3 = S3()
    writer = CaptureWriter("s3://bucket/capture/", client=s3)
    writer.add([{"ts": "2025-03-04T05:06:07Z", "model_version": "3", "text": "hi"}])
    assert writer.flush_once()
    (key,) = s3.keys
    assert re.fullmatch(r"capture/model_version=3/dt=2025-03-04/hour=05/[0-9a-f]{32}\.jsonl", key), key

    from pipelines.drift_check import hour_prefixes

    end = dt.datetime(2025, 3, 4, 5, 30, tzinfo=dt.UTC)
    assert hour_prefixes("capture", "3", end, 0) == ["capture/model_version=3/dt=2025-03-04/hour=05/"]
    assert key.startswith(hour_prefixes("capture", "3", end, 0)[0])


def test_labels_key_and_drift_metrics_come_from_the_contract() -> None:
    from model.data import LABELS_KEY
    from model.drift import DriftReport

    assert LABELS_KEY == contract().labels_key == "labels/categories.json"
    assert contract().snapshots_prefix == "snapshots"
    report = DriftReport("no_drift", 200, 1000, 0.001, 0.2, False, [])
    assert set(report.metrics()) == {
        contract().metrics.drift_score,
        "PredictionDrift",
        "ConfidenceDrop",
        "OOVRateIncrease",
        "InputDrift",
        "DriftDetected",
    }


def test_defaults_of_the_steps_match_the_contract() -> None:
    from model.serving.settings import ServingSettings
    from pipelines.drift_check import DriftSettings
    from pipelines.release.settings import CanarySettings
    from pipelines.retrain_trigger import ALARM_PREFIX

    c = contract()
    assert ServingSettings().service_name == DriftSettings().service_name == c.serving_service_name
    assert CanarySettings().namespace == DriftSettings().namespace == c.metrics_namespace
    assert ALARM_PREFIX == "esteira-model-" and CanarySettings().alarm_prefix == "esteira-canary"


# ---- the loader


def test_a_copy_inside_the_package_is_found_when_there_is_no_repository_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The images: model/ sits in site-packages or LAMBDA_TASK_ROOT with contract.yaml copied into it."""
    package = tmp_path / "site" / "model"
    package.mkdir(parents=True)
    monkeypatch.setattr(contract_module, "_PACKAGE_DIR", package)
    with pytest.raises(ContractError, match="not found"):
        load()
    (package / "contract.yaml").write_text((ROOT / "contract.yaml").read_text())
    assert load().path == package / "contract.yaml"
    (tmp_path / "site" / "contract.yaml").write_text((ROOT / "contract.yaml").read_text())
    assert load().path == tmp_path / "site" / "contract.yaml", "a checkout's root file wins over a copy"


def test_a_malformed_contract_names_what_is_wrong() -> None:
    document = yaml.safe_load((ROOT / "contract.yaml").read_text())
    parse(document, Path("ok.yaml"))
    broken = json.loads(json.dumps(document))
    del broken["metrics"]["names"]["drift_score"]
    with pytest.raises(ContractError, match=r"metrics\.names: missing \['drift_score'\]"):
        parse(broken, Path("x.yaml"))
    broken = json.loads(json.dumps(document))
    broken["lambda_functions"].append("lock")
    with pytest.raises(ContractError, match="lambda_functions: duplicate"):
        parse(broken, Path("x.yaml"))
    broken = json.loads(json.dumps(document))
    broken["labels_key"] = ""
    with pytest.raises(ContractError, match="labels_key"):
        parse(broken, Path("x.yaml"))
    broken = json.loads(json.dumps(document))
    broken["serving_environment"].append(broken["image_variable"])
    with pytest.raises(ContractError, match="image_variable .* is also in"):
        parse(broken, Path("x.yaml"))
