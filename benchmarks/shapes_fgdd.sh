#!/usr/bin/env bash
# Foreground-aware selection on the generated shapes set (object size varies by class), demo protocol
# (ConvNet-3 width 64, 20-epoch teacher, 100 student epochs), IPC 10, one cached teacher: random_real, rded,
# fgdd with true masks and with CAM over 3 seeds (seed-major, so early results cover every method), then the
# quantile ablation on true masks (seed 0). Finished runs are skipped on a rerun.
# Usage: benchmarks/shapes_fgdd.sh   (about 20 minutes on 2 idle CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
COMMON=(experiment=demo data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs"
        sweep_name=shapes-ipc10 trainer.enable_progress_bar=false)
for seed in 0 1 2; do
  .venv/bin/python -m fgdd.run -m "${COMMON[@]}" seed=$seed selector=rded,random_real
  .venv/bin/python -m fgdd.run -m "${COMMON[@]}" seed=$seed selector=fgdd segmenter=ground_truth,cam
done
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" seed=0 selector=fgdd segmenter=ground_truth threshold.q=0.3,0.5
.venv/bin/python -m fgdd.report "$BENCH/outputs/sweeps/shapes-ipc10"
