"""Least privilege, measured: docs/security.md from what each role was granted and what it used.

The embedded AWS enforces IAM on every call the stack's units make (localaws.iam) and each run
records, per role, the action patterns its policies grant and the actions it was allowed or refused
(`reports/iam-usage/*.json`, written by the demo and the applied-stack suites). This script unions
those records and writes, per role, every granted pattern with the calls that used it. A grant that
no run used must carry a reason in infra/iam-unused-reasons.yaml (AWS uses it on the unit's behalf,
it only runs on a path the runs do not take, ...), or the script fails naming it: remove the grant
or say why it stays.

    python scripts/security_report.py [reports/iam-usage]   # -> docs/security.md; exit 1 on a gap
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "security.md"
REASONS = REPO / "infra" / "iam-unused-reasons.yaml"
# What each role was seen calling, for the reachability check (tests/infra/test_reachability.py).
RECORDED = REPO / "infra" / "iam-recorded-calls.json"


def _glob(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE) is not None


def merge(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    roles: dict[str, dict[str, Any]] = {}
    for record in records:
        for role, r in record.items():
            into = roles.setdefault(role, {"granted": set(), "allowed": {}, "denied": {}})
            into["granted"] |= set(r.get("granted", []))
            for action, n in r.get("allowed", {}).items():
                into["allowed"][action] = into["allowed"].get(action, 0) + n
            for action, resources in r.get("denied", {}).items():
                into["denied"].setdefault(action, set()).update(resources)
    return roles


def reason_for(reasons: dict[str, Any], role: str, grant: str) -> str | None:
    """The reason a grant stays unused: by role pattern (after the stack's name) and action pattern."""
    for role_pattern, grants in (reasons.get("grants") or {}).items():
        if _glob(f"*{role_pattern}", role):
            for action_pattern, why in grants.items():
                if _glob(action_pattern, grant):
                    return str(why)
    return None


def build(roles: dict[str, dict[str, Any]], reasons: dict[str, Any], sources: list[str]) -> tuple[str, list[str]]:
    skipped = reasons.get("roles_not_run") or {}
    gaps: list[str] = []
    lines = [
        "# Least privilege, measured",
        "",
        "Written by `python scripts/security_report.py` from the IAM records of the runs below; do not edit.",
        "Every call the stack's units made on the embedded AWS was authorised against the role Terraform",
        "gave them (localaws.iam: resources, conditions and permissions boundaries evaluated, as AWS does).",
        "For each role: every action pattern its policies grant, the calls that used it, and for a grant",
        "no run used, why it stays (`infra/iam-unused-reasons.yaml`).",
        "",
        f"Records: {', '.join(sources)} ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}).",
        "",
    ]
    for role in sorted(roles):
        r = roles[role]
        why_not_run = next((str(v) for k, v in skipped.items() if _glob(f"*{k}", role)), None)
        if why_not_run is not None:
            lines += [f"## {role}", "", f"Not run by the local stack: {why_not_run}", ""]
            continue
        denied = {a: sorted(res) for a, res in r["denied"].items()}
        lines += [f"## {role}", ""]
        if denied:
            lines += [f"**AccessDenied during the runs:** `{json.dumps(denied)}`", ""]
            gaps.append(f"{role}: AccessDenied {denied}")
        lines += ["| granted | calls that used it | unused: why it stays |", "|---|---|---|"]
        for grant in sorted(r["granted"]):
            used = {a: n for a, n in r["allowed"].items() if _glob(grant, a)}
            if used:
                calls = ", ".join(f"{a} ({n})" for a, n in sorted(used.items()))
                lines.append(f"| `{grant}` | {calls} | |")
                continue
            why = reason_for(reasons, role, grant)
            if why is None:
                gaps.append(f"{role}: {grant} is granted and never used, and has no reason")
                why = "**no reason: remove it or give one**"
            lines.append(f"| `{grant}` | | {why} |")
        lines.append("")
    return "\n".join(lines), gaps


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else REPO / "reports" / "iam-usage"
    files = sorted(folder.glob("*.json"))
    if not files:
        print(f"no IAM records in {folder}: run `make demo` or `make test-slow` first", file=sys.stderr)
        return 2
    roles = merge([json.loads(f.read_text()) for f in files])
    reasons = yaml.safe_load(REASONS.read_text()) or {}
    text, gaps = build(roles, reasons, [f.stem for f in files])
    DOC.write_text(text)
    recorded = {role: sorted(r["allowed"]) for role, r in sorted(roles.items()) if r["allowed"]}
    RECORDED.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{DOC.relative_to(REPO)}: {len(roles)} roles from {len(files)} records; {len(gaps)} gaps")
    for gap in gaps:
        print(f"  {gap}", file=sys.stderr)
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
