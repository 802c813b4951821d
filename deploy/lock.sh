#!/usr/bin/env bash
# Regenerate the hashed lock files that deploy/bootstrap.sh installs from (pip-tools, Python 3.11):
#   requirements/lock-test.txt  pyproject.toml's dependencies + the "test" extra + pip/setuptools/wheel
#                               (requirements/bootstrap.in): deploy/test.sh, CI, bootstrap "test" or "dev"
#   requirements/lock.txt       the same minus the test tools, at the same versions: deploy/run.sh
#
#   bash deploy/lock.sh                                  # re-lock; every pin already in the lock is kept
#   bash deploy/lock.sh --upgrade-package django==5.2.20 # move one package on purpose (then run the tests)
#   LOCK_SEED=freeze.txt bash deploy/lock.sh             # start from another venv's `pip freeze --all`
# Extra arguments go to both pip-compile runs. pip-compile reads pip's own configuration (indexes,
# find-links, constraints); each package gets the hashes of every file of its pinned version on PyPI,
# so pip accepts PyPI's file or an identical local copy (this machine kind keeps torch, torchvision and
# the nvidia-* wheels on disk) and refuses anything else.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${LOCK_TOOLS_VENV:-${TMPDIR:-/tmp}/deepmed-pip-tools-7.6.2}"
if [ ! -x "$tools/bin/pip-compile" ]; then
  "${PYTHON:-python3.11}" -m venv "$tools"
  "$tools/bin/pip" install -q pip-tools==7.6.2
fi
if [ -n "${LOCK_SEED:-}" ]; then  # pip-compile keeps the pins it finds in the output file
  grep -E '^[A-Za-z0-9_.-]+==' "$LOCK_SEED" > requirements/lock-test.txt
fi
compile() {  # output file, then pip-compile arguments
  local out="$1"; shift
  CUSTOM_COMPILE_COMMAND="bash deploy/lock.sh" "$tools/bin/pip-compile" --quiet --generate-hashes \
    --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
    -o "$out" "$@"
}
compile requirements/lock-test.txt --extra test "$@" pyproject.toml requirements/bootstrap.in
cp requirements/lock-test.txt requirements/lock.txt  # the base set takes the test set's versions
compile requirements/lock.txt "$@" pyproject.toml requirements/bootstrap.in
echo "locked: $(grep -c '^[A-Za-z0-9]' requirements/lock.txt) packages (run.sh), $(grep -c '^[A-Za-z0-9]' requirements/lock-test.txt) (test.sh)"
