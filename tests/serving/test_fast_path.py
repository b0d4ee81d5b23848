"""The fast path runs only on the uvicorn it was tested with; anything else gets plain uvicorn, logged."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from model.serving.fast_path import PLAIN, TESTED_UVICORN, http_protocol
from model.serving.settings import ServingSettings
from model.serving.state import ServingState

ROOT = Path(__file__).resolve().parents[2]


def test_uvicorn_is_pinned_to_the_version_the_fast_path_was_tested_on() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if d.startswith("uvicorn")]
    assert pins == [f"uvicorn[standard]=={TESTED_UVICORN}"]
    assert uvicorn.__version__ == TESTED_UVICORN
    for lock in sorted((ROOT / "requirements").glob("*.lock")):
        found = re.findall(r"^uvicorn==(\S+)", lock.read_text(), flags=re.M)
        assert found in ([], [TESTED_UVICORN]), f"{lock.name} installs uvicorn {found}"


def test_the_fast_path_runs_on_the_tested_uvicorn() -> None:
    protocol = http_protocol(True, ServingState(ServingSettings()))
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsProtocol)


def test_another_uvicorn_falls_back_to_plain_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="esteira.serving"):
        assert http_protocol(True, ServingState(ServingSettings()), installed="0.99.0") == PLAIN
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING and record.getMessage() == "http path: plain uvicorn"
    assert "0.99.0" in record.__dict__["reason"] and TESTED_UVICORN in record.__dict__["reason"]


def test_the_setting_turns_the_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVING_FAST_PATH", "0")
    settings = ServingSettings.from_env()
    assert settings.fast_path is False
    assert http_protocol(settings.fast_path, ServingState(settings)) == PLAIN
    monkeypatch.setenv("SERVING_FAST_PATH", "yes")
    with pytest.raises(ValueError, match="SERVING_FAST_PATH"):
        ServingSettings.from_env()
