#!/usr/bin/env bash
# The study's speed on one machine, in one table (see benchmarks/gpu_study.py for details):
# samples/s per data set, and the wall time of `train.py -m experiment=paper` on MNIST- and
# CIFAR-format data at full epoch budgets, several runs sharing each GPU. Under 8 minutes on a
# GPU machine; `--smoke` runs the same path on tiny data, on a CPU too, in about a minute.
#
#   benchmarks/gpu_study.sh [--smoke] [--jobs N] [--budget S] [--options fp32 bf16 ...] \
#                           [hydra overrides for every run, e.g. trainer.precision=bf16]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
fi
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
exec "$PY" benchmarks/gpu_study.py "$@"
