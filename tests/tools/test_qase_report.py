"""Qase (issue 22): the reporter's report mode names every case with its result, offline, and the case ids of
tests/qase_ids.py reach it through tests/qase_plugin.py.

Each test runs a small throwaway suite in its own `python -m pytest` with the real reporter (qase-pytest),
its report under the suite's reports/qase as `scripts/qase.sh` puts it under the repository's. The suite's
conftest refuses every socket connection and name lookup and records the attempt, so a reporter that reached
for the network (app.qase.io or anything else) fails the test. The reporter shells out to `pip` for host
metadata; a stub `pip` first on PATH answers nothing (the reporter then reads importlib.metadata) and records
each call, which keeps the runs fast and shows whether the reporter was configured at all.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import qase_ids

ROOT = Path(__file__).resolve().parents[2]

needs_reporter = pytest.mark.skipif(
    importlib.util.find_spec("qase") is None or importlib.util.find_spec("qase.pytest") is None,
    reason="qase-pytest (the Qase reporter) is not installed: it comes with the dev lock",
)

NO_NETWORK = """
import socket
import traceback
from pathlib import Path

ATTEMPTS = Path(__file__).with_name("network-attempts.txt")


def _refuse(*args, **kwargs):
    with ATTEMPTS.open("a") as f:
        f.write(repr(args[1:] or args) + "\\n" + "".join(traceback.format_stack()) + "\\n")
    raise OSError("no network in this suite")


socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""

SUITE = """
import pytest
from qase.pytest import qase


def test_passes():
    assert True


def test_fails():
    assert 1 + 1 == 3


def test_is_skipped():
    pytest.skip("skipped on purpose")


@qase.id(4242)
def test_carries_an_id():
    assert True
"""


def _suite(folder: Path, files: dict[str, str]) -> Path:
    """A suite of its own (its rootdir: no repository config), with the network guard and the stub `pip`."""
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(NO_NETWORK)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    stub = folder / "bin" / "pip"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> "{folder / "pip-calls.txt"}"\n')
    stub.chmod(0o755)
    return folder


def _pytest(suite: Path, *args: str, **qase_env: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest` in the suite, with only the given QASE_* variables (never the caller's: a CI token
    must not send this suite to Qase, nor a caller's report path be wiped by it)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("QASE_") and k not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    }
    env["PATH"] = f"{suite / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # for -p tests.qase_plugin
    env.update(qase_env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=suite, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _report_mode(suite: Path) -> dict[str, str]:
    return {"QASE_MODE": "report", "QASE_REPORT_CONNECTION_PATH": str(suite / "reports" / "qase")}


def _results(report: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((report / "results").glob("*.json"))]


def _offline(suite: Path, run: subprocess.CompletedProcess[str]) -> None:
    attempts = suite / "network-attempts.txt"
    assert not attempts.exists(), f"the reporter reached for the network:\n{attempts.read_text()}\n{run.stdout}"


@needs_reporter
@pytest.mark.slow  # a pytest subprocess with the reporter: ~10 s each
def test_report_mode_names_every_case_with_its_result(tmp_path: Path) -> None:
    suite = _suite(tmp_path / "suite", {"test_cases.py": SUITE})
    run = _pytest(suite, **_report_mode(suite))
    assert run.returncode == 1, run.stdout + run.stderr  # one test fails, as it should
    _offline(suite, run)
    assert (suite / "pip-calls.txt").exists(), "the reporter was not configured"

    report = suite / "reports" / "qase"
    results = _results(report)
    expected = {
        "test_passes": "passed", "test_fails": "failed", "test_is_skipped": "skipped", "test_carries_an_id": "passed",
    }  # fmt: skip
    assert {r["title"]: r["execution"]["status"] for r in results} == expected, results
    assert len(results) == len(expected)
    by_title = {r["title"]: r for r in results}
    assert by_title["test_carries_an_id"]["testops_ids"] == [4242]
    assert all(by_title[t]["testops_ids"] is None for t in expected if t != "test_carries_an_id")
    assert "assert 1 + 1 == 3" in by_title["test_fails"]["execution"]["stacktrace"]
    assert by_title["test_fails"]["message"].startswith("AssertionError")
    assert "skipped on purpose" in by_title["test_is_skipped"]["execution"]["stacktrace"]

    # run.json: the run, every result by title and status, and the counts.
    run_doc = json.loads((report / "run.json").read_text())
    assert {r["title"]: r["status"] for r in run_doc["results"]} == expected
    assert {k: run_doc["stats"][k] for k in ("total", "passed", "failed", "skipped")} == {
        "total": 4, "passed": 2, "failed": 1, "skipped": 1,
    }  # fmt: skip


def _mirror(cases: list[qase_ids.Case]) -> dict[str, str]:
    """Stand-ins at the mapped node ids (each passes), plus one unmapped test in a mapped file."""
    files: dict[str, list[str]] = {}
    for case in cases:
        path, name = case.nodeid.split("::")
        files.setdefault(path, ["import pytest\n"]).append(f"\n\ndef {name}():\n    assert True\n")
    first = cases[0].nodeid.split("::")[0]
    files[first].append("\n\ndef test_not_an_operator_case():\n    assert True\n")
    return {path: "".join(parts) for path, parts in files.items()}


@needs_reporter
@pytest.mark.slow  # a pytest subprocess with the reporter: ~10 s each
def test_the_mapped_ids_reach_the_report(tmp_path: Path) -> None:
    picked = [next(c for c in qase_ids.CASES if c.suite == s) for s in qase_ids.SUITES]
    files = _mirror(picked)
    # A parametrized case: every parameter set reports to the one case.
    param = qase_ids.case_for("tests/unit/test_validate.py::test_empty_text_names_row")
    assert param is not None
    path, name = param.nodeid.split("::")
    files[path] = files.get(path, "import pytest\n") + (
        f'\n\n@pytest.mark.parametrize("text", ["", " "])\ndef {name}(text):\n    assert not text.strip()\n'
    )
    suite = _suite(tmp_path / "suite", files)
    run = _pytest(suite, "-p", "tests.qase_plugin", **_report_mode(suite))
    assert run.returncode == 0, run.stdout + run.stderr
    _offline(suite, run)

    ids: dict[str, list[list[int] | None]] = {}
    for r in _results(suite / "reports" / "qase"):
        ids.setdefault(r["title"], []).append(r["testops_ids"])
    expected: dict[str, list[list[int] | None]] = {c.nodeid.split("::")[1]: [[c.id]] for c in picked}
    expected[name] = [[param.id], [param.id]]
    expected["test_not_an_operator_case"] = [None]
    assert ids == expected


@needs_reporter
@pytest.mark.slow  # a pytest subprocess with the reporter: ~10 s each
def test_the_reporter_is_off_unless_asked_for(tmp_path: Path) -> None:
    """With no Qase mode asked for, tests/qase_plugin.py unregisters the reporter before it configures: no
    `pip` calls, no lock file, no report; the mapped ids still select with `-m qase_id`."""
    case = qase_ids.CASES[0]
    suite = _suite(tmp_path / "suite", _mirror([case]))
    run = _pytest(suite, "-p", "tests.qase_plugin", "-m", "qase_id")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "1 deselected" in run.stdout, run.stdout
    _offline(suite, run)
    assert not (suite / "pip-calls.txt").exists(), (suite / "pip-calls.txt").read_text()
    assert not (suite / "qase.lock").exists()
    assert not (suite / "build").exists() and not (suite / "reports").exists()
    assert "[Qase]" not in run.stdout + run.stderr


def test_every_mapped_case_is_a_test_that_exists() -> None:
    ids = [c.id for c in qase_ids.CASES]
    nodeids = [c.nodeid for c in qase_ids.CASES]
    assert len(set(ids)) == len(ids), "a Qase id is mapped twice"
    assert len(set(nodeids)) == len(nodeids), "a test is mapped twice"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert {c.suite for c in qase_ids.CASES} == set(qase_ids.SUITES)
    functions: dict[str, set[str]] = {}
    for case in qase_ids.CASES:
        path, name = case.nodeid.split("::")
        if path not in functions:
            assert (ROOT / path).is_file(), f"{case}: no such file"
            tree = ast.parse((ROOT / path).read_text())
            functions[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in functions[path], f"{case}: no test {name} in {path} (renamed? update tests/qase_ids.py)"
