#!/usr/bin/env bash
# Set everything up, lint, and run the whole test suite (a few minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
