#!/usr/bin/env bash
# Installs esteira's pinned infrastructure toolchain into ONE cache directory that later runs
# (make, .ci/run) reuse. It uses what the machine already has and builds only what is missing:
#
#   Terraform engine  a `tofu` or `terraform` on PATH that is new enough (OpenTofu or Terraform
#                     >= 1.11: write-only attributes, the S3 backend's use_lockfile) is linked as bin/tf; else OpenTofu is
#                     built from source at a pinned version.
#   AWS provider      with a provider registry reachable, nothing: `init` downloads it as for any
#                     user. Offline (this workplace), terraform-provider-aws is built from source,
#                     cut to the service packages infra/ uses (scripts/provider_services.py), into
#                     a filesystem mirror.
#   tflint, actionlint, checkov   pinned, built (Go) or installed (checkov: its own venv).
#   aws-lambda-rie    the Lambda Runtime Interface Emulator at a pinned commit, built (Go, static):
#                     the stand-in Lambda base image (docker/standin/lambda-python.Dockerfile) runs
#                     it in front of the runtime when no Lambda Runtime API is present.
#
#   ${ESTEIRA_TOOLS_DIR:-$HOME/.cache/esteira/tools}/
#     bin/tf                                 the Terraform engine (a link to the PATH binary or bin/tofu)
#     bin/{tofu,tflint,actionlint,checkov}   pinned binaries (tofu only when built; checkov a wrapper)
#     bin/aws-lambda-rie                     the Lambda RIE (oci/build.py copies it into the stand-in base)
#     go/cache, go/mod                       GOCACHE and GOMODCACHE (rebuilds after a change are cheap)
#     src/terraform-provider-aws             the provider's source with its service registry cut
#     mirror/<host>/hashicorp/aws/<ver>/linux_amd64/terraform-provider-aws_v<ver>
#                                            provider filesystem mirror (unpacked layout), for both
#                                            registry.opentofu.org and registry.terraform.io sources
#     tofurc                                 CLI config: export TF_CLI_CONFIG_FILE=<dir>/tofurc
#     build.log, ready                       the background build's log; the stamp of a finished build
#
#   scripts/tools.sh               build in the foreground (waits for a background build first)
#   scripts/tools.sh --background  start the build detached, logging to <dir>/build.log; `make` and
#                                  .ci/run call tools.sh, which waits on the same lock and then finds
#                                  everything built
#   scripts/tools.sh --status      print the background build's progress and whether it is ready
#   scripts/tools.sh --rie         build only aws-lambda-rie (about 20 s cold; what oci/build.py needs)
#
# Idempotent: a tool whose stamp matches its pinned version (and, for the provider, the list of
# service packages infra/ needs) is not rebuilt, so a warm run takes about a second.
#   ESTEIRA_TOOLS_FORCE=1              rebuild everything
#   ESTEIRA_TF=/path/to/tofu           use this engine (ESTEIRA_TF=build: build OpenTofu even if one is on PATH)
#   ESTEIRA_PROVIDER=build|registry    force the provider build, or trust the registry without probing
#   ESTEIRA_PROVIDER_SERVICES=all      build the whole provider (every service; about 25 min here)
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
# aws-lambda-runtime-interface-emulator publishes no semver tags the proxy serves as modules: this is the
# pseudo-version of commit bef5c4ba774d (2026-10-30). Built as its Makefile compiles it: CGO off, ./cmd/aws-lambda-rie.
RIE_MODULE="github.com/aws/aws-lambda-runtime-interface-emulator"
RIE_VERSION="v0.0.0-20261030222936-bef5c4ba774d"
# Oldest engines the configuration accepts (infra/terraform/versions.tf; Terraform needs use_lockfile).
MIN_TOFU="1.11.0"
MIN_TERRAFORM="1.11.0"
# tflint-ruleset-aws is not installable here: proxy.golang.org answers 403 "This module version is
# not available" for every version, and tflint's own plugin installer downloads from GitHub.
# tflint runs with its bundled "terraform" ruleset only.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${ESTEIRA_TOOLS_DIR:-$HOME/.cache/esteira/tools}"
BIN="$TOOLS_DIR/bin"
MIRROR="$TOOLS_DIR/mirror"
FORCE="${ESTEIRA_TOOLS_FORCE:-0}"
PYTHON="${ESTEIRA_TOOLS_PYTHON:-python3.11}"
LOG_FILE="$TOOLS_DIR/build.log"
mkdir -p "$BIN" "$MIRROR" "$TOOLS_DIR/go/cache" "$TOOLS_DIR/go/mod" "$TOOLS_DIR/stamps"

START=$SECONDS
log() { printf '[tools %s] %s\n' "$(elapsed $((SECONDS - START)))" "$*" >&2; }
elapsed() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

fresh() { # fresh NAME WANT FILE -> 0 when FILE exists and the stamp says WANT
  [[ "$FORCE" != 1 && -x "$3" && -f "$TOOLS_DIR/stamps/$1" && "$(cat "$TOOLS_DIR/stamps/$1")" == "$2" ]]
}
stamp() { printf '%s' "$2" >"$TOOLS_DIR/stamps/$1"; }

MODE=all
case "${1:-}" in
  --background)
    nohup "$0" >"$LOG_FILE" 2>&1 </dev/null &
    echo "toolchain build started in the background (pid $!); log: $LOG_FILE; progress: $0 --status"
    exit 0 ;;
  --status) # a running build holds the lock and says in `building` what it builds (a full one removed `ready`)
    if ! flock -n "$TOOLS_DIR/.lock" true 2>/dev/null; then
      line="$(cat "$TOOLS_DIR/building" 2>/dev/null || true)"
      # build.log is a background build's log: stale for a foreground or --rie build started after it.
      if [[ -f "$LOG_FILE" && ! "$LOG_FILE" -ot "$TOOLS_DIR/building" ]]; then
        line="$line: $(grep '^\[tools' "$LOG_FILE" 2>/dev/null | tail -1)"
      fi
      echo "building ${line:-(no progress recorded)}"
    elif [[ -f "$TOOLS_DIR/ready" ]]; then
      echo "ready: $(cat "$TOOLS_DIR/ready")"
    else
      echo "not built (no build running): run $0"
    fi
    # A `ready` stamp from before the RIE was part of the toolchain, or a cache the RIE was removed from.
    if ! fresh rie "$RIE_VERSION" "$BIN/aws-lambda-rie"; then
      echo "aws-lambda-rie $RIE_VERSION: not built (run $0 --rie)"
    elif [[ ! -f "$TOOLS_DIR/ready" ]]; then
      echo "aws-lambda-rie $RIE_VERSION: built"
    fi
    exit 0 ;;
  --rie) MODE=rie ;;
  "") ;;
  *) echo "usage: $0 [--background|--status|--rie]" >&2; exit 2 ;;
esac

# One build at a time: a foreground run (make, .ci/run) waits here for a background one to finish.
exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
  log "another toolchain build holds $TOOLS_DIR/.lock (log: $LOG_FILE): waiting for it"
  while ! flock -w 60 9; do log "still waiting: $(grep '^\[tools' "$LOG_FILE" 2>/dev/null | tail -1)"; done
fi
# What this build is doing, for --status (read only while the lock is held).
if [[ "$MODE" == rie ]]; then
  printf 'aws-lambda-rie only (pid %s)' "$$" >"$TOOLS_DIR/building"
else
  printf 'the toolchain (pid %s)' "$$" >"$TOOLS_DIR/building"
  rm -f "$TOOLS_DIR/ready" # --rie changes no other tool: the stamp of a finished build stays valid
fi

export GOCACHE="$TOOLS_DIR/go/cache"
export GOMODCACHE="$TOOLS_DIR/go/mod"
export GOFLAGS="-buildvcs=false -modcacherw"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

moddir() { go mod download -json "$1" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]; } # version_ge HAVE WANT
# The last build's duration of a step, for the estimate printed while it runs.
last_seconds() { cat "$TOOLS_DIR/stamps/$1.seconds" 2>/dev/null || echo "$2"; }

# go_build NAME ESTIMATE_S DIR ARGS... : `go build -v` in DIR with a progress line every 30 s
# (packages compiled so far out of the build's package graph, elapsed, estimate).
go_build() {
  local name="$1" estimate="$2" dir="$3"; shift 3
  local out="$TOOLS_DIR/$name-build.log" t=$SECONDS total pkg="${*: -1}"
  total="$(cd "$dir" && go list -deps "$pkg" 2>/dev/null | wc -l || true)"
  log "$name: compiling up to $total packages (last build took $(elapsed "$estimate"))"
  (cd "$dir" && go build -v "$@") >"$out" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null || break
    local done_n spent=$((SECONDS - t))
    done_n="$(grep -vc '^#\|^go: ' "$out" || true)"
    log "$name: $done_n/$total packages compiled, $(elapsed "$spent") elapsed, about $(elapsed $((estimate > spent ? estimate - spent : 0))) left"
  done
  if ! wait "$pid"; then log "$name: build failed:"; grep -v '^[a-z0-9.-]*\.[a-z]*/' "$out" | tail -30 >&2; exit 1; fi
  printf '%s' $((SECONDS - t)) >"$TOOLS_DIR/stamps/$name.seconds"
  log "$name: built in $(elapsed $((SECONDS - t)))"
}

command -v go >/dev/null || { log "go is required (Go >= 1.26.6 for OpenTofu $TOFU_VERSION)"; exit 1; }
command -v "$PYTHON" >/dev/null || { log "$PYTHON is required"; exit 1; }

# ---- aws-lambda-rie: a static binary from the module proxy
build_rie() {
  if fresh rie "$RIE_VERSION" "$BIN/aws-lambda-rie"; then
    log "aws-lambda-rie $RIE_VERSION: up to date"
    return 0
  fi
  local dir
  dir="$(moddir "$RIE_MODULE@$RIE_VERSION")"
  # Written beside the target and renamed: a reader (oci/build.py) never copies a half-written binary.
  go_build rie "$(last_seconds rie 20)" "$dir" -trimpath -ldflags="-s -w" \
    -o "$BIN/aws-lambda-rie.new" ./cmd/aws-lambda-rie
  mv -f "$BIN/aws-lambda-rie.new" "$BIN/aws-lambda-rie"
  stamp rie "$RIE_VERSION"
}

if [[ "$MODE" == rie ]]; then
  build_rie
  log "done: aws-lambda-rie $RIE_VERSION in $BIN"
  exit 0
fi
log "toolchain into $TOOLS_DIR"

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
  log "checkov $CHECKOV_VERSION: installing in the background (log: $TOOLS_DIR/checkov-install.log)"
fi

# tflint and actionlint build beside the provider: they fill the second core while the provider
# links (single-threaded) and its modules download.
(
  if ! fresh tflint "$TFLINT_VERSION" "$BIN/tflint"; then
    GOBIN="$BIN" go install -trimpath -ldflags="-s -w" "github.com/terraform-linters/tflint@$TFLINT_VERSION"
    stamp tflint "$TFLINT_VERSION"
  fi
  if ! fresh actionlint "$ACTIONLINT_VERSION" "$BIN/actionlint"; then
    GOBIN="$BIN" go install -trimpath -ldflags="-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    stamp actionlint "$ACTIONLINT_VERSION"
  fi
) >"$TOOLS_DIR/linters-build.log" 2>&1 &
LINTERS_PID=$!
log "tflint $TFLINT_VERSION, actionlint $ACTIONLINT_VERSION: building in the background"

# ---- Terraform engine: a new-enough one on PATH, else OpenTofu from source ------------------------
# A CLI config that names a missing file makes tofu print a warning into its JSON: read none.
engine_version() { TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])' 2>/dev/null; }
ENGINE="${ESTEIRA_TF:-}"
if [[ -z "$ENGINE" ]]; then
  for candidate in tofu terraform; do
    path="$(command -v "$candidate" 2>/dev/null || true)"
    [[ -n "$path" && "$(readlink -f "$path")" != "$BIN"/* ]] || continue
    have="$(engine_version "$path" || true)"
    want="$MIN_TOFU"; [[ "$candidate" == terraform ]] && want="$MIN_TERRAFORM"
    if [[ -n "$have" ]] && version_ge "$have" "$want"; then ENGINE="$path"; break; fi
    log "$candidate $have on PATH is older than $want: not used"
  done
fi
if [[ -z "$ENGINE" || "$ENGINE" == build ]]; then
  if ! fresh tofu "$TOFU_VERSION+release" "$BIN/tofu"; then
    dir="$(moddir "github.com/opentofu/opentofu@$TOFU_VERSION")"
    # version.dev=no drops the "-dev" suffix a plain source build reports.
    go_build tofu "$(last_seconds tofu 260)" "$dir" -trimpath \
      -ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$BIN/tofu" ./cmd/tofu
    stamp tofu "$TOFU_VERSION+release"
  fi
  ENGINE="$BIN/tofu"
fi
ln -sfn "$ENGINE" "$BIN/tf"
ENGINE_VERSION="$(engine_version "$BIN/tf" || echo '?')"
log "Terraform engine: $ENGINE ($ENGINE_VERSION) linked as $BIN/tf"

# ---- AWS provider: the registry when reachable, else built from source into the mirror -----------
registry_reachable() {
  "$PYTHON" - <<'PY' 2>/dev/null
import sys, urllib.request
for host in ("registry.opentofu.org", "registry.terraform.io"):
    try:
        urllib.request.urlopen(f"https://{host}/.well-known/terraform.json", timeout=5).read()
        sys.exit(0)
    except Exception:
        pass
sys.exit(1)
PY
}
PROVIDER_MODE="${ESTEIRA_PROVIDER:-}"
if [[ -z "$PROVIDER_MODE" ]]; then
  if registry_reachable; then PROVIDER_MODE=registry; else PROVIDER_MODE=build; fi
fi

PROVIDER_BIN="$MIRROR/registry.opentofu.org/hashicorp/aws/$AWS_PROVIDER_VERSION/linux_amd64/terraform-provider-aws_v$AWS_PROVIDER_VERSION"
if [[ "$PROVIDER_MODE" == registry ]]; then
  log "AWS provider: a provider registry is reachable; init downloads it (nothing to build)"
  rm -rf "$MIRROR"
  cat >"$TOOLS_DIR/tofurc" <<CFG
# Generated by scripts/tools.sh: providers come from their registry as usual.
CFG
else
  src_mod="$(moddir "github.com/hashicorp/terraform-provider-aws@$AWS_PROVIDER_MODULE_VERSION")"
  if [[ "${ESTEIRA_PROVIDER_SERVICES:-}" == all ]]; then
    services="all"
  else
    read -r fingerprint packages < <("$PYTHON" "$REPO/scripts/provider_services.py" plan --provider "$src_mod")
    services="$fingerprint"
  fi
  want="$AWS_PROVIDER_MODULE_VERSION+services=$services"
  if ! fresh aws-provider "$want" "$PROVIDER_BIN"; then
    [[ "$services" == all ]] && log "AWS provider: every service package" \
      || log "AWS provider: cut to the $(wc -w <<<"$packages") service packages infra/ uses: $packages"
    # Go refuses edits and overlays inside its module cache: the cut is made in a copy of the source.
    src="$TOOLS_DIR/src/terraform-provider-aws"
    rm -rf "$src" && mkdir -p "$src"
    (cd "$src_mod" && cp -r go.mod go.sum main.go internal names version "$src/")
    chmod -R u+w "$src"
    [[ "$services" == all ]] || "$PYTHON" "$REPO/scripts/provider_services.py" trim --provider "$src" >&2
    mkdir -p "$(dirname "$PROVIDER_BIN")"
    go_build aws-provider "$(last_seconds aws-provider 420)" "$src" -trimpath \
      -ldflags="-s -w -X github.com/hashicorp/terraform-provider-aws/version.ProviderVersion=$AWS_PROVIDER_VERSION" \
      -o "$PROVIDER_BIN" .
    cp -f "$src/esteira-served.json" "$(dirname "$PROVIDER_BIN")/" 2>/dev/null || true
    stamp aws-provider "$want"
  fi
  # Terraform CLI users: the same binary under the registry.terraform.io host name.
  TF_DIR="$MIRROR/registry.terraform.io/hashicorp/aws/$AWS_PROVIDER_VERSION/linux_amd64"
  mkdir -p "$TF_DIR"
  ln -f "$PROVIDER_BIN" "$TF_DIR/terraform-provider-aws_v$AWS_PROVIDER_VERSION" 2>/dev/null ||
    cp -f "$PROVIDER_BIN" "$TF_DIR/terraform-provider-aws_v$AWS_PROVIDER_VERSION"
  # CLI config: the AWS provider from the mirror only (works offline).
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
fi

build_rie

if ! wait "$LINTERS_PID"; then log "tflint/actionlint build failed:"; tail -20 "$TOOLS_DIR/linters-build.log" >&2; exit 1; fi
if [[ -n "$CHECKOV_PID" ]] && ! wait "$CHECKOV_PID"; then
  log "checkov install failed:"; tail -20 "$TOOLS_DIR/checkov-install.log" >&2; exit 1
fi

summary="engine $(readlink "$BIN/tf") ($ENGINE_VERSION), aws provider $AWS_PROVIDER_VERSION @ $AWS_PROVIDER_COMMIT ($PROVIDER_MODE), tflint $TFLINT_VERSION, actionlint $ACTIONLINT_VERSION, checkov $CHECKOV_VERSION, aws-lambda-rie $RIE_VERSION"
printf '%s\n' "$summary" >"$TOOLS_DIR/ready"
log "done in $(elapsed $((SECONDS - START))) ($((SECONDS - START)) s): $summary"
echo "export TF_CLI_CONFIG_FILE=$TOOLS_DIR/tofurc"
