#!/usr/bin/env bash
# Headless Chromium + chromedriver (Debian packages) and selenium, for tests/system/test_web_ui.py.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -q
    $sudo_ apt-get install -y --no-install-recommends chromium chromium-driver
fi
"${PYTHON:-${VENV:-/tmp/venv}/bin/python}" -m pip install -q "selenium>=4.20"
