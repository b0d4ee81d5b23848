#!/usr/bin/env bash
# Run tests with the Qase reporter (qase-pytest; docs/qase.md).
#
#   scripts/qase.sh [pytest args...]     default args: -m qase_id (the cases of tests/qase_ids.py)
#
# With QASE_TESTOPS_API_TOKEN and QASE_TESTOPS_PROJECT set (CI, from secrets) the results go to a new test
# run in that Qase project (mode "testops"; if Qase cannot be reached the reporter falls back to the local
# report). Without them the mode is "report": JSON files under reports/qase/ (run.json and results/*.json),
# no network. A QASE_MODE already set wins. The reporter recreates its report folder on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
if [[ -z "${QASE_MODE:-}" ]]; then
  if [[ -n "${QASE_TESTOPS_API_TOKEN:-}" && -n "${QASE_TESTOPS_PROJECT:-}" ]]; then
    export QASE_MODE=testops
  else
    export QASE_MODE=report
  fi
fi
export QASE_FALLBACK=${QASE_FALLBACK:-report}
export QASE_REPORT_CONNECTION_PATH=${QASE_REPORT_CONNECTION_PATH:-reports/qase}
if [[ -z "${QASE_TESTOPS_RUN_TITLE:-}" ]]; then
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  export QASE_TESTOPS_RUN_TITLE="esteira ${GITHUB_REF_NAME:-local} $commit"
fi

(($#)) || set -- -m qase_id
echo "qase: mode $QASE_MODE$([[ $QASE_MODE == report ]] && echo ", report in $QASE_REPORT_CONNECTION_PATH")" >&2
# tests/conftest.py loads tests/qase_plugin.py (the ids, and the reporter's on/off switch).
exec "$PY" -m pytest "$@"
