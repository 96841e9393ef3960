#!/usr/bin/env bash
# Install on first use, then start the app on http://127.0.0.1:7860 (options: ./run.sh --help).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
exec "$VENV/bin/python" app.py "$@"
