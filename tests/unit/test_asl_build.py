"""The committed state machines are what scripts/build_asl.py makes of stepfunctions/src/.

Terraform and CDK read stepfunctions/*.asl.json; the sources name each retry policy once. A source
edited without `make asl` leaves the deployed machine behind it, which this test reports."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import build_asl  # noqa: E402


def test_the_committed_state_machines_are_built_from_the_sources() -> None:
    for machine in build_asl.MACHINES:
        committed = (ROOT / "stepfunctions" / f"{machine}.asl.json").read_text()
        assert committed == build_asl.build(machine), f"stepfunctions/{machine}.asl.json is stale: run `make asl`"


def test_every_retrier_is_named_and_used() -> None:
    retriers = json.loads((build_asl.SOURCES / "retriers.json").read_text())
    used: set[str] = set()
    for machine in build_asl.MACHINES:
        for state in json.loads((build_asl.SOURCES / f"{machine}.json").read_text())["States"].values():
            used |= set(state.get("Retry", []))
    assert used == set(retriers), f"unused retriers: {sorted(set(retriers) - used)}"


def test_docs_name_every_retrier() -> None:
    """docs/workflow.md lists the policies a reader will find in the sources, no more, no fewer."""
    retriers = set(json.loads((build_asl.SOURCES / "retriers.json").read_text()))
    text = (ROOT / "docs" / "workflow.md").read_text()
    listed = text.split("stepfunctions/src/retriers.json`", 1)[1].split(";", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", listed)) == retriers, f"docs/workflow.md lists {listed!r}"


def test_placeholders_only_inside_strings() -> None:
    """The templates parse as JSON before Terraform renders them, so editors and linters can read them."""
    for machine in build_asl.MACHINES:
        for path in (build_asl.SOURCES / f"{machine}.json", ROOT / "stepfunctions" / f"{machine}.asl.json"):
            text = path.read_text()
            json.loads(text)
            assert not re.search(r":\s*\$\{", text), f"{path.name}: a placeholder outside a string"


def test_an_unknown_retrier_name_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "retriers.json").write_text(json.dumps({"x": {"ErrorEquals": ["E"], "MaxAttempts": 1}}))
    doc = {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "Retry": ["y"], "End": True}}}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    monkeypatch.setattr(build_asl, "SOURCES", tmp_path)
    try:
        build_asl.build("m")
    except SystemExit as exc:
        assert "unknown retriers ['y']" in str(exc)
    else:
        raise AssertionError("an unknown retrier name was accepted")
