#!/usr/bin/env bash
# Create .venv and install the locked dependency set, then DeepMed itself (editable, no dependencies):
#   bash deploy/bootstrap.sh        requirements/lock.txt       (deploy/run.sh)
#   bash deploy/bootstrap.sh test   requirements/lock-test.txt  (deploy/test.sh; "dev" is the same set)
# The lock files pin every package with its hashes (regenerate with deploy/lock.sh): pip refuses a file
# whose hash is not in the lock. Safe to run again: a no-op while pyproject.toml and the lock are
# unchanged since the last install (the test set contains the base set, so run.sh after test.sh is one).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") lock=lock ;;
  test | dev) lock=lock-test ;;
  *) echo "bootstrap.sh: unknown extras '$1' (none, test or dev)" >&2; exit 2 ;;
esac
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
"$python_bin" -c 'import sys; assert sys.version_info[:2] == (3, 11), "DeepMed needs Python 3.11"'
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp_of() { echo ".venv/.installed-$(cat pyproject.toml "requirements/$1.txt" | sha256sum | cut -c1-16)-$1"; }
stamp="$(stamp_of "$lock")"
[ -f "$stamp" ] && exit 0
[ "$lock" = lock ] && [ -f "$(stamp_of lock-test)" ] && exit 0
echo "==> installing requirements/$lock.txt and DeepMed into .venv (first run takes a few minutes)"
.venv/bin/python -m pip install -q --require-hashes -r "requirements/$lock.txt"
# setuptools (the build backend) comes from the lock: nothing unhashed is fetched to build the project.
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
rm -f .venv/.installed-*
touch "$stamp"
