#!/usr/bin/env bash
# Run the speed scripts on a CUDA GPU in one go and save their tables, for docs/benchmarks.md.
#
#   bash benchmarks/gpu_check.sh OUTPUT_FOLDER [LIBMTL_FOLDER]
#
# Each script prints a Markdown table; this wrapper writes each one to
# OUTPUT_FOLDER/<script>_<workload>.txt. With LIBMTL_FOLDER (a folder that
# contains the LibMTL package, installed with
# `pip install --target FOLDER --no-deps LibMTL`) it also compares with
# LibMTL. Each script gets a time limit, so one slow script cannot use up the
# whole GPU session. Together the limits add up to 8 minutes, or 10 with
# LibMTL. It needs mtbench's dependencies (torch, torchjd, ...) in the
# Python that PYTHON names (default python3). mtbench itself is imported
# from this checkout.
set -u -o pipefail
PYTHON=${PYTHON:-python3}

output=${1:?usage: bash benchmarks/gpu_check.sh OUTPUT_FOLDER [LIBMTL_FOLDER]}
libmtl=${2:-}
mkdir -p "$output"
output=$(cd "$output" && pwd)
if [ -n "$libmtl" ]; then libmtl=$(cd "$libmtl" && pwd) || exit 1; fi
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'No CUDA GPU is visible to PyTorch.')" || exit 1
nvidia-smi > "$output/nvidia-smi.txt" 2>&1 || true

run() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$PYTHON" "$@" --device cuda > "$output/$name.txt" 2>&1
    echo "exit status $?" >> "$output/$name.txt"
    tail -n 3 "$output/$name.txt"
}

run method_step_time_cnn 90 benchmarks/method_step_time.py --workload cnn --rounds 15
run method_step_time_segnet 90 benchmarks/method_step_time.py --workload segnet --rounds 15
run task_gradient_strategies_cnn 60 benchmarks/task_gradient_strategies.py --workload cnn --rounds 15
run task_gradient_strategies_segnet 60 benchmarks/task_gradient_strategies.py --workload segnet --rounds 15
if [ -f benchmarks/runtime_options.py ]; then
    run runtime_options_cnn 90 benchmarks/runtime_options.py --workload cnn
    run runtime_options_segnet 90 benchmarks/runtime_options.py --workload segnet
fi
if [ -n "$libmtl" ]; then
    run libmtl_comparison_cnn 60 benchmarks/libmtl_comparison.py --libmtl-path "$libmtl" --workload cnn --rounds 15
    run libmtl_comparison_segnet 60 benchmarks/libmtl_comparison.py --libmtl-path "$libmtl" --workload segnet --rounds 15
fi
