#!/usr/bin/env bash
# Run DeepMed on embedded defaults (SQLite, local media, in-process worker and channel layer).
# Set DATABASE_URL / REDIS_URL / AZURE_STORAGE_CONNECTION_STRING to use real services instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/bootstrap.sh
export MLFLOW_DISABLE_TELEMETRY=true
py=.venv/bin/python
$py manage.py migrate --noinput
$py manage.py seed_demo
$py manage.py install_starter_model || echo "!! no starter model installed: studies will fail with 'no model is deployed'"
exec $py manage.py serve --port "${PORT:-8000}"
