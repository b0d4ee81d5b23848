"""Every image's build context sends what its Dockerfile copies, and nothing the repository must keep.

A COPY of an excluded path fails only when the image is built (minutes in, on a Docker agent); this
finds it in milliseconds. The matcher (oci/ignore.py) follows Docker's rules, checked here on cases
whose answer Docker documents.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oci import ignore
from oci.build import IMAGES, ROOT


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_copy_source_is_in_the_build_context(name: str) -> None:
    dockerfile = ROOT / IMAGES[name].dockerfile
    ignorefile = Path(f"{dockerfile}.dockerignore")
    assert dockerfile.is_file(), f"{name}: no {dockerfile.relative_to(ROOT)}"
    assert ignorefile.is_file(), f"{name}: no build context rules at {ignorefile.relative_to(ROOT)}"
    assert ignore.copy_violations(dockerfile, ignorefile, ROOT) == []


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_no_context_sends_data_state_or_secrets(name: str) -> None:
    rules = ignore.parse(Path(f"{ROOT / IMAGES[name].dockerfile}.dockerignore").read_text())
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        ".esteira/state",
        "reports/x.json",
        "infra/terraform/main.tf",
        "tests/conftest.py",
        "model/__pycache__/x.pyc",
        ".env",
    ):
        assert not ignore.is_sent(path, rules), f"{name} would send {path}"


def test_an_excluded_copy_source_is_named(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.py").write_text("")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "b.py").write_text("")
    dockerfile = tmp_path / "x.Dockerfile"
    dockerfile.write_text(
        "FROM scratch\nCOPY model/ /app/model/\nCOPY --from=build /x /x\nCOPY pipelines/ \\\n  /app/p/\n"
    )
    ignorefile = tmp_path / "x.Dockerfile.dockerignore"
    ignorefile.write_text("*\n!model/\n")
    assert ignore.copy_violations(dockerfile, ignorefile, tmp_path) == [
        "x.Dockerfile: COPY pipelines: excluded by x.Dockerfile.dockerignore"
    ]


@pytest.mark.parametrize(
    ("patterns", "path", "sent"),
    [
        ("*\n!model/", "model/a/b.py", True),  # a re-included directory brings its files
        ("*\n!model/\n**/__pycache__", "model/x/__pycache__/a.pyc", False),
        ("*.md", "README.md", False),
        ("*.md", "docs/a.md", True),  # no implicit **/: patterns are anchored at the context root
        ("**/*.md", "docs/a.md", False),
        ("docs\n!docs/keep.md", "docs/keep.md", True),  # the last matching pattern decides
        ("/tmp", "tmp/a", False),  # a leading slash is the root
        ("a?c", "abc", False),  # ? is one character...
        ("a?c", "a/c", True),  # ...never a slash
    ],
)
def test_matching_follows_docker(patterns: str, path: str, sent: bool) -> None:
    assert ignore.is_sent(path, ignore.parse(patterns)) is sent
