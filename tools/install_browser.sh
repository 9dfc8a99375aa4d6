#!/usr/bin/env bash
# What the tests of `nfgan serve` need (tests/test_serve.py), installed only where missing:
#   apt: chromium chromium-driver   (Debian's browser and its WebDriver, for the headless browser test)
#   pip: selenium, and the serve extra + FastAPI's test client (fastapi uvicorn python-multipart httpx2)
# Idempotent: exits 0 at once when everything is already there. The test drives /usr/bin/chromium through
# /usr/bin/chromedriver, so nothing is downloaded when it runs (Selenium Manager is never called).
# Usage: tools/install_browser.sh [PYTHON]   (default: the repository's .venv/bin/python, else python3)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-}
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
PIP_PACKAGES=(selenium==4.51.0 fastapi==0.165.0 uvicorn==0.54.0 python-multipart==0.0.34 httpx2==2.16.2)

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver: already installed"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "error: run as root (apt-get install chromium chromium-driver)" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

if "$PY" -c "import selenium, fastapi, uvicorn, python_multipart, httpx2" >/dev/null 2>&1; then
  echo "selenium, fastapi, uvicorn, python-multipart, httpx2: already installed ($PY)"
else
  "$PY" -m pip install -q "${PIP_PACKAGES[@]}"
fi

chromium --version 2>/dev/null | head -n 1
chromedriver --version | head -n 1
