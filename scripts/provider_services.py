#!/usr/bin/env python3
"""Cut terraform-provider-aws down to the services that infra/ uses, in a copy of its source.

Why: the full provider compiles about 270 service packages and their AWS SDK clients (about an hour
on two cores); esteira's configuration uses a couple of dozen. The provider registers every service
in two generated files, its service registry (internal/provider/sdkv2/service_packages_gen.go) and
its client list (internal/conns/awsclient_gen.go). This script writes trimmed copies of just those
two files into a copy of the provider's source (tools.sh makes the copy: Go refuses overlays and
edits inside its module cache), so every resource that is kept runs the provider's own, unmodified
code.

The kept services are derived, never typed: every `resource`, `data` and `ephemeral` block of type
`aws_*` under infra/ is looked up in the provider's own per-service registrations
(internal/service/*/service_package_gen.go). A type the provider does not know is an error here, not
a surprise at `validate`.

    provider_services.py types   [--infra DIR]                 the aws_* types the configuration uses
    provider_services.py plan    --provider SRC [--infra DIR]  the service packages those types need
    provider_services.py trim    --provider COPY [--infra DIR]
                                  rewrites the two files in COPY and writes COPY/esteira-served.json

Standard library only: tools.sh runs it before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULE = "github.com/hashicorp/terraform-provider-aws"
REGISTRY = Path("internal/provider/sdkv2/service_packages_gen.go")
CLIENTS = Path("internal/conns/awsclient_gen.go")

_BLOCK = re.compile(r'^\s*(resource|data|ephemeral)\s+"(aws_[a-z0-9_]+)"', re.MULTILINE)
_TYPE_NAME = re.compile(r'TypeName:\s+"(aws_[a-z0-9_]+)"')
_IMPORT_LINE = re.compile(r'^\s*(?:([A-Za-z_][A-Za-z0-9_]*)\s+)?"([^"]+)"\s*$')
_CLIENT_METHOD = re.compile(
    r"^func \(c \*AWSClient\) (\w+Client)\(ctx context\.Context\)[^\n]*\{\n.*?^\}\n", re.MULTILINE | re.DOTALL
)
_METHOD_CALL = re.compile(r"\.(\w+Client)\(")
_BUILD_TAG = re.compile(r"^//go:build\s+(.+)$", re.MULTILINE)


def config_types(infra: Path) -> dict[str, set[str]]:
    """Maps each aws_* block type used under `infra` to the kinds it is used as (resource, data...)."""
    used: dict[str, set[str]] = {}
    for tf in sorted(infra.rglob("*.tf")):
        if ".terraform" in tf.parts:
            continue
        for kind, type_name in _BLOCK.findall(tf.read_text()):
            used.setdefault(type_name, set()).add(kind)
    return used


def served_types(provider: Path) -> dict[str, set[str]]:
    """Maps each service package directory to the resource/data-source/ephemeral types it serves."""
    served: dict[str, set[str]] = {}
    for gen in sorted((provider / "internal/service").glob("*/service_package_gen.go")):
        served[gen.parent.name] = set(_TYPE_NAME.findall(gen.read_text()))
    return served


def needed_packages(provider: Path, infra: Path) -> list[str]:
    """The service packages that serve every type the configuration uses; exits on an unknown type."""
    by_type: dict[str, str] = {}
    for package, types in served_types(provider).items():
        for type_name in types:
            by_type.setdefault(type_name, package)
    used = config_types(infra)
    unknown = sorted(t for t in used if t not in by_type)
    if unknown:
        sys.exit(f"provider_services: {provider.name} serves no type named {', '.join(unknown)} (used under {infra})")
    return sorted({by_type[t] for t in used})


def _imports(source: str) -> list[tuple[str, str]]:
    """(name, path) of each import in a Go file's import block(s); name is the alias or last element."""
    found: list[tuple[str, str]] = []
    for block in re.findall(r"^import \((.*?)^\)", source, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            match = _IMPORT_LINE.match(line)
            if match:
                found.append((match.group(1) or match.group(2).rsplit("/", 1)[-1], match.group(2)))
    found += [
        (m.group(1) or m.group(2).rsplit("/", 1)[-1], m.group(2))
        for m in re.finditer(r'^import (?:(\w+) )?"([^"]+)"', source, re.MULTILINE)
    ]
    return found


def trimmed_registry(source: str, keep: set[str]) -> str:
    """The service registry with only the kept service packages imported and listed."""
    prefix = f"{MODULE}/internal/service/"
    dropped = {name for name, path in _imports(source) if path.startswith(prefix) and path[len(prefix) :] not in keep}
    lines = []
    for line in source.splitlines(keepends=True):
        match = _IMPORT_LINE.match(line)
        if match and match.group(2).startswith(prefix) and match.group(2)[len(prefix) :] not in keep:
            continue
        entry = re.match(r"^\s*(\w+)\.ServicePackage\(ctx\),\s*$", line)
        if entry and entry.group(1) in dropped:
            continue
        lines.append(line)
    return "".join(lines)


def _compiled_sources(provider: Path, registry: str) -> Iterable[str]:
    """Non-test Go sources of every provider package the trimmed build compiles (import closure)."""
    seen: set[str] = set()
    todo = ["."]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        for go in sorted((provider / rel).glob("*.go")):
            if go.name.endswith("_test.go"):
                continue
            path = go.relative_to(provider)
            if path == CLIENTS:
                continue  # replaced: it imports no provider package
            text = registry if path == REGISTRY else go.read_text()
            tag = _BUILD_TAG.search(text)
            if tag and tag.group(1).strip() in ("ignore", "generate", "tools"):
                continue  # code generators; over-including anything else only keeps a client too many
            yield text
            for _name, imp in _imports(text):
                if imp == MODULE or imp.startswith(MODULE + "/"):
                    todo.append(imp[len(MODULE) + 1 :] or ".")


def trimmed_clients(source: str, called: set[str]) -> str:
    """The client list with only the accessor methods some compiled package calls."""
    methods = {m.group(1): m.group(0) for m in _CLIENT_METHOD.finditer(source)}
    kept = [body for name, body in methods.items() if name in called]
    head = source[: source.index("import (")]
    body_text = "\n".join(kept)
    imports = [
        (name, path)
        for name, path in _imports(source)
        if not path.startswith("github.com/aws/aws-sdk-go-v2/service/") or f"*{name}.Client" in body_text
    ]
    import_block = (
        "import (\n"
        + "".join(
            f'\t{name} "{path}"\n' if path.rsplit("/", 1)[-1] != name else f'\t"{path}"\n' for name, path in imports
        )
        + ")\n\n"
    )
    return head + import_block + body_text


SERVED = "esteira-served.json"


def trim(provider: Path, infra: Path) -> dict[str, object]:
    """Rewrites the registry and the client list in `provider` (a writable copy) to what infra/ needs."""
    if "/pkg/mod/" in str(provider.resolve()) or "/go/mod/" in str(provider.resolve()):
        sys.exit(f"provider_services: {provider} is in a Go module cache; trim a copy of it")
    keep = set(needed_packages(provider, infra))
    registry = trimmed_registry((provider / REGISTRY).read_text(), keep)
    called: set[str] = set()
    for text in _compiled_sources(provider, registry):
        called.update(_METHOD_CALL.findall(text))
    clients = trimmed_clients((provider / CLIENTS).read_text(), called)
    (provider / REGISTRY).write_text(registry)
    (provider / CLIENTS).write_text(clients)
    served = served_types(provider)
    summary: dict[str, object] = {
        "service_packages": sorted(keep),
        "sdk_clients": sorted(n for n in called if f"func (c *AWSClient) {n}(" in clients),
        "types": sorted(set().union(*(served[p] for p in keep))),
    }
    (provider / SERVED).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def fingerprint(packages: Iterable[str]) -> str:
    """Short hash of the kept package list: tools.sh rebuilds the provider when it changes."""
    return hashlib.sha256(",".join(sorted(packages)).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["types", "plan", "trim"])
    parser.add_argument("--infra", type=Path, default=REPO / "infra")
    parser.add_argument("--provider", type=Path, help="the provider's source directory (trim: a copy)")
    args = parser.parse_args(argv)
    if args.command == "types":
        print("\n".join(sorted(config_types(args.infra))))
        return 0
    if args.provider is None:
        parser.error("--provider is required")
    if args.command == "plan":
        packages = needed_packages(args.provider, args.infra)
        print(f"{fingerprint(packages)} {' '.join(packages)}")
        return 0
    summary = trim(args.provider, args.infra)
    counts = {key: len(value) for key, value in summary.items() if isinstance(value, list)}
    print(
        f"{counts['service_packages']} service packages, {counts['sdk_clients']} SDK clients, "
        f"{counts['types']} types served ({args.provider / SERVED})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
