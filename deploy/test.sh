#!/usr/bin/env bash
# Run every DeepMed test:
#   pass 1 — embedded mode (SQLite, in-memory broker/channels) and the ML library;
#   pass 2 — real services: PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379 (started here if down),
#            a real `celery worker` subprocess, channels-redis, a live Daphne server, Azurite.
# Extra arguments go to pytest in both passes.
set -uo pipefail
cd "$(dirname "$0")/.."
bash deploy/bootstrap.sh test || exit 1
# Lint and format first: a style slip fails in seconds, not after the suite (config: pyproject.toml).
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
# Headless Chromium (Debian package) for the browser tests.
command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
  || echo "warning: chromium could not be installed: browser tests will be skipped"
# Azurite (npm) for the Azure Blob tests, axe-core (npm) for the accessibility test. One npm command for both: a later
# `npm install --no-save` may prune what an earlier one installed without a package.json.
if [ ! -x node_modules/.bin/azurite-blob ] || [ ! -f node_modules/axe-core/axe.min.js ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund azurite@3.35.0 axe-core@4.14.1 >/dev/null 2>&1
fi
[ -x node_modules/.bin/azurite-blob ] || echo "warning: azurite could not be installed (npm): Azure Blob storage tests will be skipped"
[ -f node_modules/axe-core/axe.min.js ] || echo "warning: axe-core could not be installed (npm): the accessibility test will be skipped"
bash deploy/services.sh || exit 1
export MLFLOW_DISABLE_TELEMETRY=true
py=.venv/bin/python
reports="$(mktemp -d)"

run_pass() {  # name, then env assignments and pytest args
  local name="$1"; shift
  echo "==> test pass: $name"
  env "$@" --junitxml="$reports/$name.xml"
  local rc=$?
  [ $rc -eq 5 ] && rc=0  # "no tests collected" is not a failure of the suite
  return $rc
}

run_pass embedded DEEPMED_DATA_DIR="$reports/var-embedded" \
  $py -m pytest -m "not services" "$@"
rc1=$?
run_pass services DEEPMED_DATA_DIR="$reports/var-services" DEEPMED_TEST_SERVICES=1 \
  DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/deepmed}" \
  REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}" \
  $py -m pytest -m services -p no:cacheprovider "$@"
rc2=$?

$py - "$reports" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
p = f = s = 0
for path in glob.glob(sys.argv[1] + "/*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        t, e, fl, sk = (int(suite.get(k, 0)) for k in ("tests", "errors", "failures", "skipped"))
        p += t - e - fl - sk; f += e + fl; s += sk
print(f"total: {p} passed, {f} failed, {s} skipped")
PY
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]
