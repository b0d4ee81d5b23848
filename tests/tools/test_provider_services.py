"""scripts/provider_services.py on a miniature provider tree laid out like terraform-provider-aws.

The real cut is proven by tests/infra (the built provider's own schema against the configuration);
these tests pin the rules: types derive the packages, calls derive the clients, and an unknown type
or a module-cache path is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import provider_services as ps  # noqa: E402

MODULE = ps.MODULE


def service(name: str, types: list[str], body: str = "", imports: str = "") -> dict[str, str]:
    entries = "".join(f'\t_ = x{{TypeName: "{t}"}}\n' for t in types)
    gen = f"package {name}\n\nfunc f() {{\n{entries}}}\n"
    files = {f"internal/service/{name}/service_package_gen.go": gen}
    if body:
        files[f"internal/service/{name}/{name}.go"] = f"package {name}\n\n{imports}\nfunc g() {{ {body} }}\n"
    return files


@pytest.fixture
def provider(tmp_path: Path) -> Path:
    root = tmp_path / "provider"
    files: dict[str, str] = {
        "main.go": f'package main\n\nimport (\n\t"{MODULE}/internal/provider/sdkv2"\n)\n',
        str(ps.REGISTRY): (
            'package sdkv2\n\nimport (\n\t"context"\n\n'
            f'\t"{MODULE}/internal/conns"\n'
            f'\t"{MODULE}/internal/service/alpha"\n'
            f'\t"{MODULE}/internal/service/beta"\n'
            f'\t"{MODULE}/internal/service/gamma"\n'
            ")\n\nfunc servicePackages(ctx context.Context) []conns.ServicePackage {\n\tv := []conns.ServicePackage{\n"
            "\t\talpha.ServicePackage(ctx),\n\t\tbeta.ServicePackage(ctx),\n"
            "\t\tgamma.ServicePackage(ctx),\n\t}\n\treturn v\n}\n"
        ),
        str(ps.CLIENTS): (
            'package conns\n\nimport (\n\t"context"\n\n'
            '\t"github.com/aws/aws-sdk-go-v2/service/alpha"\n'
            '\t"github.com/aws/aws-sdk-go-v2/service/beta"\n'
            '\t"github.com/aws/aws-sdk-go-v2/service/delta"\n'
            f'\t"{MODULE}/internal/errs"\n'
            ")\n\n"
            + "".join(
                f"func (c *AWSClient) {n.title()}Client(ctx context.Context) *{n}.Client {{\n\treturn nil\n}}\n\n"
                for n in ("alpha", "beta", "delta")
            )
        ),
        # alpha calls beta's client through a helper package it imports; gamma is never compiled.
        **service(
            "alpha",
            ["aws_alpha_thing"],
            "c.AlphaClient(ctx); helper.Do()",
            f'import (\n\t"{MODULE}/internal/helper"\n)\n',
        ),
        "internal/helper/helper.go": "package helper\n\nfunc Do() { m.BetaClient(ctx) }\n",
        **service("beta", ["aws_beta_thing", "aws_beta_other"]),
        **service("gamma", ["aws_gamma_thing"], "c.DeltaClient(ctx)"),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def infra_with(tmp_path: Path, text: str) -> Path:
    infra = tmp_path / "infra"
    infra.mkdir(exist_ok=True)
    (infra / "main.tf").write_text(text)
    return infra


def test_packages_are_derived_from_the_types_the_configuration_uses(provider: Path, tmp_path: Path) -> None:
    infra = infra_with(tmp_path, 'resource "aws_alpha_thing" "a" {}\n  data "aws_beta_other" "b" {}\n')
    assert ps.config_types(infra) == {"aws_alpha_thing": {"resource"}, "aws_beta_other": {"data"}}
    assert ps.needed_packages(provider, infra) == ["alpha", "beta"]


def test_trim_keeps_the_used_services_and_the_clients_compiled_code_calls(provider: Path, tmp_path: Path) -> None:
    infra = infra_with(tmp_path, 'resource "aws_alpha_thing" "a" {}\n')
    summary = ps.trim(provider, infra)
    registry = (provider / ps.REGISTRY).read_text()
    assert "alpha.ServicePackage(ctx)" in registry
    assert "beta.ServicePackage(ctx)" not in registry and "/service/gamma" not in registry
    clients = (provider / ps.CLIENTS).read_text()
    # AlphaClient: called by alpha; BetaClient: called by a package alpha imports; DeltaClient: only by gamma.
    assert "AlphaClient" in clients and "BetaClient" in clients and "DeltaClient" not in clients
    assert "service/delta" not in clients and f'"{MODULE}/internal/errs"' in clients
    assert summary["types"] == ["aws_alpha_thing"] and summary["sdk_clients"] == ["AlphaClient", "BetaClient"]


def test_a_type_no_service_serves_stops_the_build_naming_it(provider: Path, tmp_path: Path) -> None:
    infra = infra_with(tmp_path, 'resource "aws_alpha_thing" "a" {}\nresource "aws_nowhere_thing" "n" {}\n')
    with pytest.raises(SystemExit, match="aws_nowhere_thing"):
        ps.needed_packages(provider, infra)


def test_the_module_cache_is_never_edited(tmp_path: Path) -> None:
    cache_copy = tmp_path / "go" / "pkg" / "mod" / "provider"
    cache_copy.mkdir(parents=True)
    with pytest.raises(SystemExit, match="module cache"):
        ps.trim(cache_copy, tmp_path)


def test_the_fingerprint_changes_with_the_package_list() -> None:
    assert ps.fingerprint(["b", "a"]) == ps.fingerprint(["a", "b"]) != ps.fingerprint(["a", "b", "c"])


def test_this_repository_uses_only_aws_types() -> None:
    used = ps.config_types(ROOT / "infra")
    assert used and all(t.startswith("aws_") for t in used)
