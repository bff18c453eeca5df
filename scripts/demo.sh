#!/usr/bin/env bash
# Set everything up and run the main job: train LeNet-300-100 on Fashion-MNIST, prune 90% of
# its parameters with the coreset (and baselines), fine-tune, print the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/coreprune demo "$@"
