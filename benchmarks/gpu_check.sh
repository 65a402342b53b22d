#!/usr/bin/env bash
# The GPU check (issue 22, item 1): every number the project needs a GPU for, in under 8 minutes on
# one H100/H200, as Markdown + JSON tables in OUT. The work is benchmarks/gpu_check.py (its
# docstring lists the parts); this wrapper only puts the checkout on PYTHONPATH.
#
#   benchmarks/gpu_check.sh OUT            # a GPU machine; exit 2 (nothing written) without a GPU
#   benchmarks/gpu_check.sh OUT --tiny     # toy sizes: a CPU smoke run in seconds
#   benchmarks/gpu_check.sh --help
#
# Exit status: 0 every part ok, 1 some part failed (OUT/summary.md says which), 2 no GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python}" -m benchmarks.gpu_check "$@"
