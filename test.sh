#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine (venv, Python packages, Debian's chromium for
# the browser test when run as root), then runs the tests offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing Debian's chromium for the browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
echo "== installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
if command -v npm >/dev/null 2>&1; then
  echo "== installing the live viewer's browser packages (demo/viewer, pinned by its package-lock.json)"
  npm ci --prefix demo/viewer --no-audit --no-fund --loglevel=error
fi
echo "== ruff (lint; pyproject [tool.ruff])"
.venv/bin/python -m ruff check .
echo "== running tests"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python -m pytest "$@"
