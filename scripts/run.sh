#!/usr/bin/env bash
# One command: install everything, build the offline demo bundle, and answer a demo query.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
. .venv/bin/activate
attribute demo "$@"
