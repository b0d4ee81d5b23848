#!/usr/bin/env bash
# Pin every base image in docker/*.Dockerfile to the digest its exact tag points at today.
#
# Each Dockerfile names its base as a pair of build args before the first FROM:
#   ARG <NAME>_IMAGE=<registry/repo>:<exact version tag>
#   ARG <NAME>_DIGEST=                  (or sha256:<64 hex> once pinned)
#   FROM ${<NAME>_IMAGE}${<NAME>_DIGEST:+@}${<NAME>_DIGEST}
# This script resolves each <NAME>_IMAGE with `docker buildx imagetools inspect` (a registry query: it
# needs network access to the registry and the buildx plugin, not a Docker engine) and writes the
# digest of the tag's manifest list into <NAME>_DIGEST. Review and commit the diff; rerun to move a pin.
#
# Why not pin by hand: a digest copied from a web page or guessed is worse than none. This repository's
# own build machines have no registry access, so the digests stay empty there, and the tests only
# require the exact tag plus this hook (tests/serving/test_dockerfile.py).
#
# Usage: scripts/pin-base-images.sh [--check] [DOCKERFILE...]   (default: docker/*.Dockerfile)
#   --check  resolve and compare only; exit 1 if a digest is missing or differs (for CI with a registry).
set -euo pipefail

check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
  shift
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
  files=("$root"/docker/*.Dockerfile)
fi
docker_bin="${DOCKER:-docker}"
status=0

resolve() {
  # Print the digest (sha256:<64 hex>) of the manifest (list) that the reference points at.
  local ref="$1" json digest
  json="$("$docker_bin" buildx imagetools inspect "$ref" --format '{{json .Manifest}}')"
  digest="$(printf '%s' "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')"
  if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "error: $ref resolved to an unexpected digest: '$digest'" >&2
    return 1
  fi
  printf '%s\n' "$digest"
}

for file in "${files[@]}"; do
  found=0
  while IFS= read -r line; do
    found=1
    name="${line#ARG }"
    name="${name%%=*}"      # e.g. PYTHON_IMAGE
    ref="${line#*=}"        # e.g. python:3.11.14-slim-bookworm
    digest_arg="${name%_IMAGE}_DIGEST"
    if ! grep -qE "^ARG ${digest_arg}=" "$file"; then
      echo "error: $file has ARG $name but no ARG ${digest_arg}=" >&2
      status=1
      continue
    fi
    current="$(grep -E "^ARG ${digest_arg}=" "$file" | head -n 1)"
    current="${current#*=}"
    digest="$(resolve "$ref")"
    if [[ $check -eq 1 ]]; then
      if [[ "$current" != "$digest" ]]; then
        echo "$file: $ref is $digest, pinned '${current}'" >&2
        status=1
      else
        echo "$file: $ref pinned at $digest"
      fi
    else
      sed -i.bak -E "s|^ARG ${digest_arg}=.*$|ARG ${digest_arg}=${digest}|" "$file"
      rm -f "$file.bak"
      echo "$file: $ref -> $digest"
    fi
  done < <(grep -E '^ARG [A-Z0-9_]+_IMAGE=' "$file")
  if [[ $found -eq 0 ]]; then
    echo "warning: $file declares no ARG *_IMAGE base; nothing to pin" >&2
  fi
done
exit "$status"
