#!/usr/bin/env bash
# One command: install everything, build the offline demo bundle (answering one demo query on the command
# line), then open the explorer at http://localhost:8501. Pass --no-app to stop after the demo query.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
. .venv/bin/activate
attribute demo
if [ "${1:-}" != "--no-app" ]; then
  exec streamlit run streamlit_demo.py
fi
