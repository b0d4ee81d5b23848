"""`tofu apply` of infra/terraform with envs/dev.tfvars on the embedded AWS, written into docs/infra-notes.md.

The figure that matters is planned = applied: every resource a user's first apply creates is created
here too, nothing switched off. The block between `<!-- emulator-apply:begin -->` and
`<!-- emulator-apply:end -->` is rewritten by this script only.

    python -m benchmarks.apply
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.toolchain import NOTES, write_block
from localaws.terraform import apply_once


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="esteira-apply-") as tmp:
        result = apply_once(Path(tmp))
    if result["error"]:
        print(result["error"], file=sys.stderr)
        return 1
    same = "= planned" if result["applied"] == result["planned"] else f"**≠ planned {result['planned']}**"
    block = "\n".join(
        [
            "<!-- emulator-apply:begin (written by `python -m benchmarks.apply`; do not edit) -->",
            "| | Count | Time |",
            "|---|---|---|",
            f"| planned (create), `envs/dev.tfvars` | {result['planned']} | |",
            f"| applied (managed resources in state) | {result['applied']} ({same}) | "
            f"{result['seconds']:.0f} s (init + plan + apply) |",
            f"| resource types applied | {len(result['types'])} | |",
            "",
            f"Measured {dt.date.today().isoformat()} on {platform.node() or 'this machine'} "
            f"({os.cpu_count()} cores, {platform.python_version()}), engine `{result['engine']}`, "
            "with `python -m benchmarks.apply`.",
            "<!-- emulator-apply:end -->",
        ]
    )
    write_block(NOTES, "emulator-apply", block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
