#!/usr/bin/env bash
# One command: install what the tests need (Python packages, Debian's chromium for the browser test), lint,
# build the documentation site (--strict), and run the test suite (GPU tests deselected without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-test.txt
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif [ -n "${CI:-}" ]; then
    echo "error: /usr/bin/chromium is missing and cannot be installed (needs root and apt-get)" >&2; exit 1
  else
    echo "note: /usr/bin/chromium is missing; the browser tests will be skipped (sudo apt-get install chromium)" >&2
  fi
fi
. .venv/bin/activate
ruff check .
ruff format --check .
# the documentation site: broken links, missing pages and bad references fail the build
NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true mkdocs build --strict --quiet
markers="not gpu"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then markers=""; fi
python -m pytest ${markers:+-m "$markers"} "$@"
