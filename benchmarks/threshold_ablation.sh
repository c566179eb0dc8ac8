#!/usr/bin/env bash
# Threshold ablation of the foreground-aware selector on real CIFAR-10 (IPC 10, seed 0, cam occupancy), with the
# accuracy benchmark's protocol (reference ConvNet-3 teacher, 100 student epochs) so that its rows sit beside the
# benchmark's fgdd (q = 0.7) and rded (= threshold=never) rows: per-class quantile q = 0.3, 0.5, 0.9 and `always`.
# Usage: benchmarks/threshold_ablation.sh     (finished runs are skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
PY=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
[ -d "$BENCH/data/cifar10" ] || { echo "run benchmarks/accuracy.sh cifar10 first (it extracts the data)" >&2; exit 2; }
COMMON=(data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs" logger=csv
        evaluator.epochs=100 evaluator.num_workers=0 trainer.enable_progress_bar=false seed="$SEEDS" ipc=10
        dataset=cifar10 model=convnet3 model@teacher.arch=convnet3 teacher=checkpoint
        teacher.checkpoint="$(realpath "$SHARED/teachers/cifar10_conv3.pth")" selector=fgdd segmenter=cam
        sweep_name=threshold-ablation-cifar10)
"$PY" -m fgdd.run -m "${COMMON[@]}" threshold=quantile threshold.q=0.3,0.5,0.9
"$PY" -m fgdd.run -m "${COMMON[@]}" threshold=always
"$PY" -m fgdd.report "$BENCH/outputs/sweeps/threshold-ablation-cifar10" --no-runs
