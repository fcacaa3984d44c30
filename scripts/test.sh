#!/usr/bin/env bash
# One command: install what the tests need, lint, and run the test suite (GPU tests deselected without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
. .venv/bin/activate
ruff check .
ruff format --check .
markers="not gpu"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then markers=""; fi
python -m pytest ${markers:+-m "$markers"} "$@"
