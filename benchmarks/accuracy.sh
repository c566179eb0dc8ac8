#!/usr/bin/env bash
# Accuracy benchmark, CPU-sized, on real data from ../shared/data: one teacher per dataset shared by every row
# (the reference checkpoints of ../shared/teachers where one exists), rows random_real, rded and fgdd(cam),
# IPC 10 and 50, 3 seeds. Students follow RDED's soft-label protocol except the number of epochs (RDED: 300; here
# 100 at IPC 10 and 40 at IPC 50: the same 200 optimizer steps, RDED's batch sizes 50 and 100) and, for ImageNette/ImageWoof, the resolution (64 px with factor 2, RDED: 128 px; ConvNet-4 instead
# of ConvNet-5). Finished runs are skipped: rerunning the script only runs what is missing.
#
# Usage: benchmarks/accuracy.sh [cifar10] [imagenette] [imagewoof]       (default: all three)
#   IPCS="10 50" SEEDS=0,1,2 EPOCHS_IPC10=100 EPOCHS_IPC50=40 benchmarks/accuracy.sh cifar10
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
IPCS=${IPCS:-10 50}
EPOCHS_IPC10=${EPOCHS_IPC10:-100}
EPOCHS_IPC50=${EPOCHS_IPC50:-40}
SEEDS=${SEEDS:-0,1,2}
SELECTORS=${SELECTORS:-random_real,rded,fgdd}
WOOF_TEACHER_EPOCHS=${WOOF_TEACHER_EPOCHS:-8}
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
DATASETS=("$@"); [ ${#DATASETS[@]} -gt 0 ] || DATASETS=(cifar10 imagenette imagewoof)

extract() {  # archive (train/ val|test/ at its top) -> $BENCH/data/<folder>, once, atomically
  [ -d "$BENCH/data/$2" ] && return
  local partial; partial=$(mktemp -d "$BENCH/data/.extract-XXXX")
  tar -xzf "$SHARED/data/$1" -C "$partial" && mv "$partial" "$BENCH/data/$2"
}
mkdir -p "$BENCH/data"
COMMON=(data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs" logger=csv
        evaluator.num_workers=0 trainer.enable_progress_bar=false seed="$SEEDS" selector="$SELECTORS" segmenter=cam)
for dataset in "${DATASETS[@]}"; do
  case $dataset in
    cifar10)
      extract cifar10-jpeg.tar.gz cifar10
      ARGS=(dataset=cifar10 model=convnet3 model@teacher.arch=convnet3 teacher=checkpoint
            teacher.checkpoint="$(realpath "$SHARED/teachers/cifar10_conv3.pth")") ;;
    imagenette)
      extract imagenette2-128.tar.gz imagenette2-128
      ARGS=(dataset=imagenette dataset.input_size=64 model=convnet4 model@teacher.arch=convnet4 teacher=checkpoint
            teacher.checkpoint="$(realpath "$SHARED/teachers/imagenette64_conv4.pth")") ;;
    imagewoof)  # no reference teacher: trained once by fgdd (cached), the recipe of shared/teachers with fewer epochs
      extract imagewoof2-128.tar.gz imagewoof2-128
      ARGS=(dataset=imagewoof dataset.input_size=64 model=convnet4 model@teacher.arch=convnet4
            teacher.recipe.epochs="$WOOF_TEACHER_EPOCHS" teacher.recipe.batch_size=128) ;;
    *) echo "unknown dataset $dataset (cifar10, imagenette, imagewoof)" >&2; exit 2 ;;
  esac
  for ipc in $IPCS; do
    epochs_var=EPOCHS_IPC$ipc; epochs=${!epochs_var:?set $epochs_var}
    sweep=accuracy-$dataset-ipc$ipc-e$epochs
    "$PY" -m fgdd.run -m "${COMMON[@]}" "${ARGS[@]}" ipc="$ipc" evaluator.epochs="$epochs" sweep_name="$sweep"
    "$PY" -m fgdd.report "$BENCH/outputs/sweeps/$sweep" --csv "$BENCH/outputs/$sweep.csv" \
      --markdown "$BENCH/outputs/$sweep.md" --no-runs
    if [ "${RECORD:-0}" = 1 ]; then  # the table into its section of BENCHMARKS.md
      "$PY" benchmarks/record.py "$sweep" --command "benchmarks/accuracy.sh $dataset (IPCS=$ipc SEEDS=$SEEDS)" \
        < "$BENCH/outputs/$sweep.md"
    fi
  done
done
