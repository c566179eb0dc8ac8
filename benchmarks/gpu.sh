#!/usr/bin/env bash
# The GPU check, one self-contained run (well under 10 minutes on one H200):
#   1. trains the ImageNette teacher (ConvNet-5, 128 px, RDED's protocol) on the 128 px archive,
#   2. distills IPC 10 with rded and fgdd (cam) and trains both students with RDED's full 300-epoch protocol,
#   3. measures GPU throughput of every stage, random-weight Grounded SAM2 at its real input sizes included
#      (benchmarks/speed.py --device cuda),
#   4. races fgdd's student loop against RDED's own loop on the GPU (benchmarks/reference_loop.py: ConvNet-3 32 px,
#      ConvNet-4 64 px, ConvNet-5 128 px; bf16, channels_last, torch.compile and CUDA graphs as levers),
#   and prints one table (benchmarks/gpu_table.py). Everything lands under $OUT (the device tool's folder) or
#   $FGDD_GPU_OUT (default /tmp/fgdd-gpu/out).
#
# The GPU machine has no internet and no ../shared: `make gpu-bundle` puts the wheels it lacks (hydra-core,
# omegaconf, antlr4, iopath, sam2, ...) and the 49 MB ImageNette archive into .gpu/ (ignored), which the call carries.
#   device run:  benchmarks/gpu.sh                       (carry: [".gpu"])
#   CPU smoke:   FGDD_GPU_SMOKE=1 benchmarks/gpu.sh      (32 px, 1 teacher epoch, 2 student epochs; a slow test)
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${FGDD_GPU_BUNDLE:-.gpu}
SMOKE=${FGDD_GPU_SMOKE:-0}
WORK=${FGDD_GPU_WORK:-/tmp/fgdd-gpu}
OUT_DIR=${OUT:-${FGDD_GPU_OUT:-$WORK/out}}
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled FGDD_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p "$WORK" "$OUT_DIR"

# 1. what the machine lacks, from carried wheels (no index is reachable there)
if ! "$PY" -c "import hydra, omegaconf, sam2" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$BUNDLE"/wheels/*.whl
  export PYTHONPATH="$WORK/site:${PYTHONPATH:-}"
fi
"$PY" -c "import fgdd" 2>/dev/null || export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
[ -d "$BUNDLE/weights" ] && export FGDD_WEIGHTS_DIR=${FGDD_WEIGHTS_DIR:-$PWD/$BUNDLE/weights}  # u2netp (segmenter=saliency)

# 2. data: the carried archive (or an extracted folder given as FGDD_DATA_DIR)
if [ -z "${FGDD_DATA_DIR:-}" ]; then
  export FGDD_DATA_DIR="$WORK/data"
  if [ ! -d "$FGDD_DATA_DIR/imagenette2-128/train" ]; then
    mkdir -p "$FGDD_DATA_DIR" && tar -xzf "$BUNDLE/imagenette2-128.tar.gz" -C "$FGDD_DATA_DIR"
  fi
fi

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; TRAINER=cpu
  PROTOCOL=(dataset.input_size=32 teacher.recipe.epochs=1 selector.mipc=40 evaluator.epochs=2 evaluator.num_workers=0
            teacher.recipe.num_workers=0 model.net.width=16 teacher.arch.net.width=16 trainer.enable_progress_bar=false)
  SPEED=(--quick --device cpu)
  REFERENCE=(--quick --case 32 --device cpu)
else
  DEVICE=cuda; TRAINER=gpu
  # teacher: RDED's ConvNet-5 at 128 px; the recipe of shared/teachers (one-cycle SGD) with 30 epochs
  PROTOCOL=(teacher.recipe.epochs=30 teacher.recipe.batch_size=128 teacher.recipe.num_workers=12 evaluator.num_workers=8
            trainer.enable_progress_bar=false)
  SPEED=(--device cuda)
  REFERENCE=(--device cuda --case 32 64 128 --repeats 2 --epochs 6 --threads 8)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
fi

START=$(date +%s)
"$PY" -m fgdd.run -m dataset=imagenette model=convnet5 model@teacher.arch=convnet5 ipc=10 seed=0 \
  device=$DEVICE trainer=$TRAINER logger=csv "${PROTOCOL[@]}" \
  cache_dir="$WORK/cache" output_root="$WORK/outputs" sweep_name=gpu selector=rded,fgdd > "$OUT_DIR/runs.log" 2>&1 \
  || { tail -n 60 "$OUT_DIR/runs.log"; exit 1; }
grep -E "\[fgdd\]\[INFO\] - (stage .* done|teacher val)" "$OUT_DIR/runs.log" || true
echo "distillation + students: $(( $(date +%s) - START )) s"

"$PY" benchmarks/speed.py "${SPEED[@]}" --json "$OUT_DIR/speed.json" 2>&1 | tee "$OUT_DIR/speed.log" | tail -n 40
# a failure here still leaves the table of everything else
"$PY" benchmarks/reference_loop.py "${REFERENCE[@]}" --json "$OUT_DIR/reference_loop.json" > "$OUT_DIR/reference_loop.log" \
  2>&1 || { echo "benchmarks/reference_loop.py failed:"; tail -n 30 "$OUT_DIR/reference_loop.log"; }
"$PY" benchmarks/gpu_table.py "$WORK/outputs/sweeps/gpu" "$OUT_DIR/speed.json" "$OUT_DIR/reference_loop.json" \
  | tee "$OUT_DIR/table.md"
