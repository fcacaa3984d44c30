#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the project with the given requirements file. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
req="${1:-requirements.txt}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
  done
fi
[ -d .venv ] || "$py" -m venv .venv
. .venv/bin/activate
stamp=".venv/.installed-$(cat "$req" requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -r "$req"
  # setuptools' banner about editable installs is advice for package authors, not for users: kept off the screen
  PYTHONWARNINGS="ignore:Editable installation" python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
