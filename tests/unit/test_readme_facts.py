"""Figures the README states about the repository, kept true by a test (docs say only what is true now)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_counts_the_terraform_modules() -> None:
    modules = [p for p in (REPO / "infra" / "terraform" / "modules").iterdir() if (p / "main.tf").is_file()]
    stated = re.search(r"root module \+ (\d+) modules", (REPO / "README.md").read_text())
    assert stated is not None, "README.md no longer says how many modules infra/terraform has"
    assert int(stated.group(1)) == len(modules), sorted(p.name for p in modules)


def test_every_doc_the_readme_links_exists() -> None:
    text = (REPO / "README.md").read_text()
    missing = [link for link in re.findall(r"\]\((docs/[^)#]+)", text) if not (REPO / link).is_file()]
    assert not missing, missing
