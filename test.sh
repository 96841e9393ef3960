#!/usr/bin/env bash
# Install on first use (project, test tools, Chromium), lint, then run every test tier.
# Extra arguments go to pytest, e.g. ./test.sh -m "not e2e" for the fast part alone.
set -euo pipefail
cd "$(dirname "$0")"
EXTRAS=test source scripts/venv.sh
export CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    export CHROMIUM=/usr/bin/chromium
  else
    echo "warning: no chromium found; install it (apt-get install chromium) or the e2e tests fail" >&2
  fi
fi
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/python" -m pytest "$@"
