#!/usr/bin/env bash
# Real-data comparison on one teacher per dataset, IPC 10, seed 0, RDED's 300-epoch student protocol:
#   CIFAR-10 (32 px JPEG archive): ConvNet-3 teacher trained by fgdd (6 epochs, cached); random_real, rded, fgdd(cam).
#   ImageNette (128 px archive used at 64 px, factor 2, 32 px cells): the reference ConvNet-4 teacher from
#   shared/teachers; rded and fgdd(cam).
# Finished runs are skipped, so rerunning this script only runs what is missing.
# Usage: benchmarks/real_data.sh   (about 1 hour on 2 CPU cores when nothing is cached)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
extract() {  # archive -> $BENCH/data/<folder>, once
  if [ ! -d "$BENCH/data/$2" ]; then
    mkdir -p "$BENCH/data/.$2.partial"
    tar -xzf "$SHARED/data/$1" -C "$BENCH/data/.$2.partial"
    mv "$BENCH/data/.$2.partial" "$BENCH/data/$2"
  fi
}
extract cifar10-jpeg.tar.gz cifar10
mkdir -p "$BENCH/data/imagenette2-128"
[ -d "$BENCH/data/imagenette2-128/train" ] || { extract imagenette2-128.tar.gz .imagenette-x && mv "$BENCH/data/.imagenette-x"/* "$BENCH/data/imagenette2-128/"; }
# (the same overrides as earlier runs of this script, so their run folders are found and skipped)
COMMON=(data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs" evaluator.num_workers=0)
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" sweep_name=cifar10-ipc10 \
  dataset=cifar10 model=convnet3 model@teacher.arch=convnet3 ipc=10 teacher.recipe.epochs=6 \
  selector=rded,random_real,fgdd
.venv/bin/python -m fgdd.run -m "${COMMON[@]}" sweep_name=imagenette64-ipc10 \
  dataset=imagenette dataset.input_size=64 model=convnet4 model@teacher.arch=convnet4 ipc=10 \
  teacher=checkpoint teacher.checkpoint="$(realpath "$SHARED/teachers/imagenette64_conv4.pth")" \
  selector=rded,fgdd
.venv/bin/python -m fgdd.report "$BENCH/outputs/sweeps/cifar10-ipc10"
.venv/bin/python -m fgdd.report "$BENCH/outputs/sweeps/imagenette64-ipc10"
