#!/usr/bin/env bash
# Real-data baseline benchmark: CIFAR-10 (32 px JPEG archive), ConvNet-3 teacher trained by fgdd (cached),
# IPC 10 distilled with rded and random_real, ConvNet-3 students with RDED's full 300-epoch protocol.
# Usage: benchmarks/cifar10_rded.sh [extra hydra overrides]   (about 40 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled}
if [ ! -d "$BENCH/data/cifar10/train" ]; then
  mkdir -p "$BENCH/data/.cifar10.partial"
  tar -xzf "$SHARED/data/cifar10-jpeg.tar.gz" -C "$BENCH/data/.cifar10.partial"
  mv "$BENCH/data/.cifar10.partial" "$BENCH/data/cifar10"
fi
.venv/bin/python -m fgdd.run -m \
  dataset=cifar10 model=convnet3 model@teacher.arch=convnet3 ipc=10 selector=rded,random_real \
  data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs" sweep_name=cifar10-ipc10 \
  teacher.recipe.epochs=6 evaluator.num_workers=0 "$@"
.venv/bin/python -m fgdd.report "$BENCH/outputs/sweeps/cifar10-ipc10"
