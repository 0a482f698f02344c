#!/usr/bin/env bash
# Headless Chromium + chromedriver (Debian packages) and selenium, for tests/system/test_web_ui.py.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -q
    $sudo_ apt-get install -y --no-install-recommends chromium chromium-driver
fi
# selenium is in the `test` extra; install it here too when a venv is already there.
python="${PYTHON:-${HYPERAI_VENV:-.venv}/bin/python}"
if [ -x "$python" ]; then "$python" -m pip install -q "selenium>=4.20"; fi
