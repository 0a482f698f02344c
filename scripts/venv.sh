#!/usr/bin/env bash
# Sourced by quickstart.sh and test.sh: make sure $VENV (default .venv) exists and holds this project
# with its test extras, reinstalling when pyproject.toml changed. Run from the repository root.
VENV="${HYPERAI_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[test]"
  touch "$VENV/.installed"
fi
