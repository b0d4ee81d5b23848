"""The Qase reporter (qase-pytest) in this repository's test runs: off unless asked for, with the case ids
of tests/qase_ids.py.

qase-pytest registers itself in every pytest run of an environment that has it (a `pytest11` entry point).
Even in its mode "off" it is not inert: configuring it shells out to `pip` several times for host metadata
(seconds per run) and each session leaves a `qase.lock` in the working directory. So unless a Qase mode other
than "off" is asked for, this plugin unregisters the reporter before pytest configures its plugins, as
`-p no:qase_pytest` would. The mode is read from the reporter's own sources, with its precedence: the
`--qase-mode` option over the QASE_MODE variable over "mode" in ./qase.config.json.

Each test mapped in tests/qase_ids.py gets the reporter's `qase_id` marker (what `@qase.id(N)` sets), so its
results land on that Qase case; `pytest -m qase_id` selects exactly the mapped tests.

Enabled from tests/conftest.py: `pytest_plugins = ["tests.qase_plugin"]`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.qase_ids import case_for

REPORTER = "qase_pytest"  # the reporter's entry-point name (module qase.pytest.conftest)
MODES = ("testops", "testops_multi", "report", "off")  # the reporter ignores any other value, as this does


def qase_mode(config: pytest.Config) -> str:
    """The mode the reporter will run in: "off" unless one of its sources names another."""
    try:
        from_file = json.loads(Path("qase.config.json").read_text()).get("mode")
    except (OSError, ValueError, AttributeError):
        from_file = None
    mode = "off"
    for value in (from_file, os.environ.get("QASE_MODE"), config.getoption("qase_mode", default=None)):
        if value in MODES:
            mode = value
    return mode


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # After the command line is parsed (the reporter's options exist), before any pytest_configure runs.
    if qase_mode(config) == "off":
        config.pluginmanager.set_blocked(REPORTER)


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(REPORTER):  # it registers the marker itself when it runs
        config.addinivalue_line("markers", "qase_id: the Qase test case this test reports to (tests/qase_ids.py)")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects and before the reporter filters by a test plan
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        case = case_for(item.nodeid)
        if case is not None and item.get_closest_marker("qase_id") is None:
            item.add_marker(pytest.mark.qase_id(id=case.id))
