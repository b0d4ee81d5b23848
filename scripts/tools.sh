#!/usr/bin/env bash
# Installs esteira's pinned infrastructure toolchain into ONE cache directory that later runs
# (make, .ci/run) reuse. No registry here ships a modern Terraform/OpenTofu binary and web downloads
# fail, but the Go module proxy works: everything Go-based is built from source at a pinned version.
#
#   ${ESTEIRA_TOOLS_DIR:-$HOME/.cache/esteira/tools}/
#     bin/{tofu,tflint,actionlint,checkov}   pinned binaries (checkov is a wrapper into its venv)
#     go/cache, go/mod                       GOCACHE and GOMODCACHE (make rebuilds cheap)
#     mirror/<host>/hashicorp/aws/<ver>/linux_amd64/terraform-provider-aws_v<ver>
#                                            provider filesystem mirror (unpacked layout), for both
#                                            registry.opentofu.org and registry.terraform.io sources
#     tofurc                                 CLI config: export TF_CLI_CONFIG_FILE=<dir>/tofurc
#     checkov-venv/                          checkov in its own venv (its pins clash with ours)
#
# Idempotent: a tool whose stamp matches its pinned version is not rebuilt, so a warm run takes
# about a second. Set ESTEIRA_TOOLS_FORCE=1 to rebuild everything.
set -euo pipefail

# ---- pinned versions -------------------------------------------------------------------------
TOFU_VERSION="v1.12.6"            # github.com/opentofu/opentofu (go.mod has replace: build in module dir)
TFLINT_VERSION="v0.64.0"          # github.com/terraform-linters/tflint
ACTIONLINT_VERSION="v1.7.12"      # github.com/rhysd/actionlint
# terraform-provider-aws: v5/v6 tags lack the /vN module suffix, so the proxy only serves commits as
# pseudo-versions. This commit is main on 2026-06-02 (version/VERSION = 6.47.1, CHANGELOG heading
# "6.48.0 (Unreleased)"); it is installed in the mirror as version 6.47.1.
AWS_PROVIDER_MODULE_VERSION="v1.60.1-0.20260602190131-5f2286d6d836"
AWS_PROVIDER_COMMIT="5f2286d6d836"
AWS_PROVIDER_VERSION="6.47.1"
CHECKOV_VERSION="3.3.30"
# tflint-ruleset-aws is not installable here: proxy.golang.org answers 403 "This module version is
# not available" for every version, and tflint's own plugin installer downloads from GitHub.
# tflint runs with its bundled "terraform" ruleset only.

TOOLS_DIR="${ESTEIRA_TOOLS_DIR:-$HOME/.cache/esteira/tools}"
BIN="$TOOLS_DIR/bin"
MIRROR="$TOOLS_DIR/mirror"
FORCE="${ESTEIRA_TOOLS_FORCE:-0}"
PYTHON="${ESTEIRA_TOOLS_PYTHON:-python3.11}"
mkdir -p "$BIN" "$MIRROR" "$TOOLS_DIR/go/cache" "$TOOLS_DIR/go/mod" "$TOOLS_DIR/stamps"

export GOCACHE="$TOOLS_DIR/go/cache"
export GOMODCACHE="$TOOLS_DIR/go/mod"
export GOFLAGS="-buildvcs=false -modcacherw"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

log() { printf '[tools] %s\n' "$*" >&2; }
fresh() { # fresh NAME WANT FILE -> 0 when FILE exists and the stamp says WANT
  [[ "$FORCE" != 1 && -x "$3" && -f "$TOOLS_DIR/stamps/$1" && "$(cat "$TOOLS_DIR/stamps/$1")" == "$2" ]]
}
stamp() { printf '%s' "$2" >"$TOOLS_DIR/stamps/$1"; }
moddir() { go mod download -json "$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }

command -v go >/dev/null || { log "go is required (Go >= 1.26.6 for OpenTofu $TOFU_VERSION)"; exit 1; }
command -v "$PYTHON" >/dev/null || { log "$PYTHON is required (checkov venv)"; exit 1; }
START=$SECONDS

# checkov installs from PyPI in the background while Go compiles (network vs CPU).
CHECKOV_PID=""
if ! fresh checkov "$CHECKOV_VERSION" "$BIN/checkov"; then
  (
    rm -rf "$TOOLS_DIR/checkov-venv"
    "$PYTHON" -m venv "$TOOLS_DIR/checkov-venv"
    "$TOOLS_DIR/checkov-venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    cat >"$BIN/checkov" <<WRAP
#!/usr/bin/env bash
# checkov $CHECKOV_VERSION from its own venv; BC_SKIP_MAPPING avoids the vendor call made offline.
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
exec "$TOOLS_DIR/checkov-venv/bin/checkov" "\$@"
WRAP
    chmod +x "$BIN/checkov"
    stamp checkov "$CHECKOV_VERSION"
  ) >"$TOOLS_DIR/checkov-install.log" 2>&1 &
  CHECKOV_PID=$!
  log "checkov $CHECKOV_VERSION: installing in background (log: $TOOLS_DIR/checkov-install.log)"
fi

# ---- OpenTofu ----------------------------------------------------------------------------------
# version.dev=no drops the "-dev" suffix a plain source build reports.
if ! fresh tofu "$TOFU_VERSION+release" "$BIN/tofu"; then
  log "tofu $TOFU_VERSION: building"
  t=$SECONDS
  dir="$(moddir "github.com/opentofu/opentofu@$TOFU_VERSION")"
  (cd "$dir" && go build -trimpath -ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$BIN/tofu" ./cmd/tofu)
  stamp tofu "$TOFU_VERSION+release"
  log "tofu: $((SECONDS - t)) s"
fi

# ---- terraform-provider-aws into the filesystem mirror -----------------------------------------
PROVIDER_BIN="$MIRROR/registry.opentofu.org/hashicorp/aws/$AWS_PROVIDER_VERSION/linux_amd64/terraform-provider-aws_v$AWS_PROVIDER_VERSION"
if ! fresh aws-provider "$AWS_PROVIDER_MODULE_VERSION" "$PROVIDER_BIN"; then
  log "terraform-provider-aws $AWS_PROVIDER_VERSION ($AWS_PROVIDER_COMMIT): building (many minutes cold)"
  t=$SECONDS
  dir="$(moddir "github.com/hashicorp/terraform-provider-aws@$AWS_PROVIDER_MODULE_VERSION")"
  mkdir -p "$(dirname "$PROVIDER_BIN")"
  (cd "$dir" && go build -trimpath \
    -ldflags="-s -w -X github.com/hashicorp/terraform-provider-aws/version.ProviderVersion=$AWS_PROVIDER_VERSION" \
    -o "$PROVIDER_BIN" .)
  stamp aws-provider "$AWS_PROVIDER_MODULE_VERSION"
  log "terraform-provider-aws: $((SECONDS - t)) s"
fi
# Terraform CLI users: the same binary under the registry.terraform.io host name.
TF_DIR="$MIRROR/registry.terraform.io/hashicorp/aws/$AWS_PROVIDER_VERSION/linux_amd64"
mkdir -p "$TF_DIR"
ln -f "$PROVIDER_BIN" "$TF_DIR/terraform-provider-aws_v$AWS_PROVIDER_VERSION" 2>/dev/null ||
  cp -f "$PROVIDER_BIN" "$TF_DIR/terraform-provider-aws_v$AWS_PROVIDER_VERSION"

# ---- tflint and actionlint (plain go install works: no replace directives) ----------------------
if ! fresh tflint "$TFLINT_VERSION" "$BIN/tflint"; then
  log "tflint $TFLINT_VERSION: building"
  GOBIN="$BIN" go install -trimpath -ldflags="-s -w" "github.com/terraform-linters/tflint@$TFLINT_VERSION"
  stamp tflint "$TFLINT_VERSION"
fi
if ! fresh actionlint "$ACTIONLINT_VERSION" "$BIN/actionlint"; then
  log "actionlint $ACTIONLINT_VERSION: building"
  GOBIN="$BIN" go install -trimpath -ldflags="-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  stamp actionlint "$ACTIONLINT_VERSION"
fi

# ---- CLI config: providers come from the mirror only (works offline) ----------------------------
cat >"$TOOLS_DIR/tofurc" <<CFG
# Generated by scripts/tools.sh. Use with: export TF_CLI_CONFIG_FILE=$TOOLS_DIR/tofurc
# (OpenTofu and Terraform read the same provider_installation block.)
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.opentofu.org/hashicorp/aws", "registry.terraform.io/hashicorp/aws"]
  }
}
CFG

if [[ -n "$CHECKOV_PID" ]]; then
  if ! wait "$CHECKOV_PID"; then
    log "checkov install failed:"; tail -20 "$TOOLS_DIR/checkov-install.log" >&2; exit 1
  fi
fi

log "done in $((SECONDS - START)) s"
echo "esteira tools in $TOOLS_DIR: bin/ (tofu $TOFU_VERSION, tflint $TFLINT_VERSION, actionlint $ACTIONLINT_VERSION, checkov $CHECKOV_VERSION), aws provider $AWS_PROVIDER_VERSION @ $AWS_PROVIDER_COMMIT in $MIRROR; export TF_CLI_CONFIG_FILE=$TOOLS_DIR/tofurc"
