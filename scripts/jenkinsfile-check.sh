#!/usr/bin/env bash
# Checks a Jenkinsfile with a real parser: Debian's groovy (GroovyShell().parse + an AST walk in
# .ci/ParseJenkinsfile.groovy). Prints the pipeline's structure as JSON; exit 2 on a syntax error.
# Why not Jenkins' own linter: it needs a running Jenkins controller, and none can be installed here.
# groovy 2.4 (Debian bookworm) runs on JDK 17; it needs JAVA_HOME, which this script finds.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
file="${1:-Jenkinsfile}"

command -v groovy >/dev/null || { echo "groovy is not installed (apt-get install groovy; see scripts/apt-packages-cicd.txt)" >&2; exit 3; }
if [[ -z "${JAVA_HOME:-}" || ! -x "${JAVA_HOME}/bin/java" ]]; then
  for candidate in /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/temurin-17-* "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"; do
    if [[ -x "$candidate/bin/java" ]]; then JAVA_HOME="$candidate"; break; fi
  done
fi
export JAVA_HOME
# groovy 2.4 warns about illegal reflective access on JDK 9+; it is harmless, keep stderr for errors.
exec groovy "$here/.ci/ParseJenkinsfile.groovy" "$file" 2> >(grep -v -e 'WARNING: ' >&2)
