#!/usr/bin/env bash
# LocalStack community on the host, without Docker or an auth token (Python 3.13 only).
#   scripts/localstack.sh venv    create/refresh the venv in the tools cache (pinned)
#   scripts/localstack.sh start   start it on 127.0.0.1:${LOCALSTACK_PORT:-4566}; prints the PID
#   scripts/localstack.sh stop    stop the one this script started (SIGTERM, then SIGKILL)
#   scripts/localstack.sh python  print the venv's python (exit 1 if there is none)
set -euo pipefail

CACHE="${ESTEIRA_TOOLS_CACHE:-$HOME/.cache/esteira}"
VENV="${LOCALSTACK_VENV:-$CACHE/localstack-venv}"
PY313="${PYTHON313:-}"
PORT="${LOCALSTACK_PORT:-4566}"
STATE="${LOCALSTACK_STATE_DIR:-$CACHE/localstack-state}"
PINS=("localstack-core[runtime]==2026.3.0" "cbor2<6" "pyopenssl>=25,<25.2" "cryptography>=45")

find_python313() {
  if [[ -n "$PY313" ]]; then echo "$PY313"; return 0; fi
  for candidate in python3.13 "$HOME/.pyenv/versions/3.13.0/bin/python3.13" /root/.pyenv/versions/3.13.0/bin/python3.13; do
    if "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 13)" >/dev/null 2>&1; then
      "$candidate" -c "import sys; print(sys.executable)"; return 0
    fi
  done
  return 1
}

cmd_venv() {
  local py
  py="$(find_python313)" || { echo "no Python 3.13 found (set PYTHON313)" >&2; exit 3; }
  local stamp="$VENV/.esteira-pins"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "${PINS[*]}" ]]; then
    echo "$VENV is up to date"; return 0
  fi
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "${PINS[*]}" > "$stamp"
  echo "installed LocalStack into $VENV"
}

cmd_start() {
  [[ -x "$VENV/bin/python" ]] || cmd_venv
  mkdir -p "$STATE"
  GATEWAY_LISTEN="127.0.0.1:$PORT" GATEWAY_SERVER=hypercorn SKIP_SSL_CERT_DOWNLOAD=1 \
    LOCALSTACK_VOLUME_DIR="$STATE/volume" DISABLE_EVENTS=1 \
    nohup "$VENV/bin/python" -m localstack.runtime.main > "$STATE/localstack.log" 2>&1 &
  echo $! > "$STATE/localstack.pid"
  cat "$STATE/localstack.pid"
}

cmd_stop() {
  local pidfile="$STATE/localstack.pid"
  [[ -f "$pidfile" ]] || { echo "not started by this script"; return 0; }
  local pid; pid="$(cat "$pidfile")"
  # LocalStack logs "Completed, bye!" on SIGTERM but may not exit: SIGKILL after a grace period.
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  venv) cmd_venv ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  python) [[ -x "$VENV/bin/python" ]] && echo "$VENV/bin/python" || exit 1 ;;
  *) echo "usage: $0 venv|start|stop|python" >&2; exit 2 ;;
esac
