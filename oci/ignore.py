"""Build-context rules as Docker applies them, and a check that every COPY source is sent.

Each image has its own ignore file next to its Dockerfile (`docker/serving.Dockerfile.dockerignore`,
BuildKit's convention; `oci.build` passes it to buildah with `--ignorefile`). A COPY whose source the
ignore file excludes fails only when the image is built, minutes in: `copy_violations` finds it in
milliseconds. The matching follows moby's patternmatcher: patterns are relative to the context root,
`*` and `?` stay inside one path segment, `**` spans segments, a pattern that matches a directory
matches everything under it, `!` re-includes, and the last matching pattern decides.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    include: bool
    text: str


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` : zero or more whole segments
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
        i += 1
    return re.compile(f"^{out}$")


def parse(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:].strip() if include else line
        cleaned = str(PurePosixPath(pattern.lstrip("/"))) if pattern.strip("/") else "."
        rules.append(Rule(_regex(cleaned), include, line))
    return rules


def is_sent(path: str, rules: list[Rule]) -> bool:
    """Whether the file or directory at `path` (relative to the context) reaches the builder."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    sent = True
    for rule in rules:
        if any(rule.regex.match(c) for c in candidates):
            sent = rule.include
    return sent


def copy_sources(dockerfile: Path) -> list[str]:
    """The context paths the Dockerfile's COPY and ADD instructions read (not `COPY --from=<stage>`)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources: list[str] = []
    for line in text.splitlines():
        words = shlex.split(line.strip(), comments=True) if line.strip() else []
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources.extend(a.rstrip("/") or "." for a in args[:-1])
    return sources


def copy_violations(dockerfile: Path, ignorefile: Path, context: Path) -> list[str]:
    """Each COPY source that the ignore file keeps out of the build context, or that does not exist."""
    rules = parse(ignorefile.read_text())
    problems = []
    for source in copy_sources(dockerfile):
        where = context / source
        if not where.exists():
            problems.append(f"{dockerfile.name}: COPY {source}: not in the build context {context}")
        elif not is_sent(source, rules):
            problems.append(f"{dockerfile.name}: COPY {source}: excluded by {ignorefile.name}")
        elif where.is_dir():
            files = [p for p in where.rglob("*") if p.is_file()]
            if files and not any(is_sent(str(p.relative_to(context)), rules) for p in files):
                problems.append(f"{dockerfile.name}: COPY {source}: {ignorefile.name} excludes every file under it")
    return problems
