"""docs/settings.md is what scripts/settings_table.py generates from the settings classes now."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_table_is_up_to_date() -> None:
    script = _script()
    assert (REPO / "docs" / "settings.md").read_text() == script.render(), (
        "docs/settings.md is out of date: run .venv/bin/python scripts/settings_table.py"
    )


def test_the_table_lists_every_setting_of_every_class() -> None:
    from model.settings import EsteiraSettings, env_spec

    script = _script()
    listed = script.classes()
    text = (REPO / "docs" / "settings.md").read_text()
    for cls in listed:
        for name, field in cls.model_fields.items():
            spec = env_spec(field)
            assert spec is not None or name == "extra", f"{cls.__name__}.{name} is read from no variable"
            if spec:
                assert f"`{spec.env}`" in text
    # Every settings class the project defines is in the table (a new one must be added to CLASSES).
    defined = {
        match
        for folder in ("model", "pipelines", "lambdas", "oci", "localaws", "demo")
        for path in (REPO / folder).rglob("*.py")
        for match in re.findall(r"^class (\w+)\(EsteiraSettings\)", path.read_text(), flags=re.M)
    }
    assert defined == {cls.__name__ for cls in listed}
    assert all(issubclass(cls, EsteiraSettings) for cls in listed)


def test_the_readme_links_the_table() -> None:
    assert "docs/settings.md" in (REPO / "README.md").read_text()
