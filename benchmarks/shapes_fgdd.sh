#!/usr/bin/env bash
# Foreground-aware selection on the generated shapes set (object size varies by class), demo protocol
# (ConvNet-3 width 64, 20-epoch teacher, 100 student epochs), IPC 10, 3 seeds, one cached teacher:
# random_real, rded, fgdd with true masks and with CAM, and the quantile ablation on true masks.
# Usage: benchmarks/shapes_fgdd.sh   (about 20-30 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
COMMON=(experiment=demo data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs"
        sweep_name=shapes-ipc10 trainer.enable_progress_bar=false)
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" selector=rded,random_real seed=0,1,2
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" selector=fgdd segmenter=ground_truth,cam seed=0,1,2
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" selector=fgdd segmenter=ground_truth threshold.q=0.3,0.5 seed=0,1,2
.venv/bin/python -m fgdd.report "$BENCH/outputs/sweeps/shapes-ipc10"
