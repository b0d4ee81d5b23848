"""Each image installs exactly the versions the tests ran: its lock (requirements/<image>.lock) is a subset
of requirements/dev.lock at the same pins, and every image's Dockerfile installs its own lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oci.build import IMAGES, ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.M)


def pins(path: Path) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version for name, version in PIN.findall(path.read_text())}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_lock_pins_what_dev_lock_pins(name: str) -> None:
    lock = ROOT / "requirements" / f"{name}.lock"
    dev = pins(ROOT / "requirements" / "dev.lock")
    image = pins(lock)
    assert image, f"{lock} pins nothing"
    differs = {pkg: (v, dev.get(pkg)) for pkg, v in image.items() if dev.get(pkg) != v}
    assert differs == {}, f"{lock.name} differs from dev.lock (run `make locks`): {differs}"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_image_installs_its_own_lock_and_no_dev_tools(name: str) -> None:
    dockerfile = (ROOT / IMAGES[name].dockerfile).read_text()
    assert f"requirements/{name}.lock" in dockerfile
    assert "dev.lock" not in dockerfile
    assert not {"pytest", "moto", "ruff"} & set(pins(ROOT / "requirements" / f"{name}.lock"))


def test_serving_carries_no_parquet_reader() -> None:
    """Serving reads no data files: pyarrow (~150 MB) is the data extra's, not the core's."""
    assert "pyarrow" not in pins(ROOT / "requirements" / "serving.lock")
