#!/usr/bin/env bash
# Issue 11's CPU grid: RDED's protocol at a CPU-sized resolution (conf/experiment/cpu_*.yaml: ImageNette and
# ImageWoof at 64 px with factor 1 and ConvNet-4, CIFAR-10 at 32 px with ConvNet-3; 300 student epochs, RDED's
# soft-label evaluator, square crops), IPC 10, seeds 0, 1, 2, with fgdd's foreground from segmenter=saliency.
# Cells: ImageNette and ImageWoof: random_real, rded, fgdd(saliency); CIFAR-10: rded, fgdd(saliency) and the
# threshold ablation (q = 0.3, 0.5 = the default and the fgdd cell, 0.7, always); fgdd(cam) cells with CAM=1.
#
# One cell (method x seed) runs at a time; a finished cell (metrics.json) is skipped, so a rerun fills only what is
# missing, and after EACH finished cell the dataset's table is rewritten in its section of BENCHMARKS.md
# (<!-- bench:cpu-grid-<dataset> -->; per-seed numbers, fgdd - rded per seed, times, the command). A failed cell is
# recorded as failed and the grid goes on; the script then exits non-zero.
#
# Issue 20's grid in RDED's own regime: imagenette-conv5 and imagewoof-conv5 (conf/experiment/rded_*_conv5.yaml:
# 128 px, factor 2, ConvNet-5 teacher and student, K = 5, mipc 300, 300 student epochs, RDED's test set scored
# beside the full val split), for every IPC in IPCS, into GRID/<dataset>-ipc<N>. ImageNette from the squashed
# imagenette2-128 copy (the only one here), ImageWoof from imagewoof2-146 (aspect kept; dataset.aspect=crop makes a
# whole photo square). The teacher is benchmarks/teachers/<dataset>_conv5.pth where one is kept there (trained once by
# fgdd with the experiment's recipe and kept with benchmarks/keep_teacher.py), else trained by the first cell (cached).
#
# Usage: benchmarks/cpu_grid.sh [imagenette] [imagewoof] [cifar10] [imagenette-conv5] [imagewoof-conv5]
#   (default: the first three)   IPCS="1 10" (the conv5 datasets' IPCs)
#   SEEDS="0 1 2"    EPOCHS=300 (student)    MIPC= (unset: the protocol's 300)    CAM=0|1
#   GRID=$FGDD_BENCH_DIR/outputs/cpu-grid (run folders)   BENCHMARKS=BENCHMARKS.md (the file the tables go to)
#   WOOF_TEACHER=<imagewoof64_conv4.pth> (unset: trained once by fgdd with teacher.recipe, cached)
#   EXTRA="key=value ..." (more overrides for every cell, e.g. a smoke test's dataset.train_per_class)
#   CELLS="rded fgdd-saliency-q0.5" (unset: every cell of the dataset, in the order above)
#   SCORE=test|holdout  holdout: the same cells trained the same way but scored with evaluator=holdout on a held-out
#     part of the TRAINING split (never the test split), into GRID/<dataset>-holdout and its own BENCHMARKS section
#     (<!-- bench:cpu-grid-<dataset>-holdout -->); the threshold default is chosen by this table
#   STUDENT=resnet18 (unset: the protocol's student) another student architecture (a conf/model name) trained on the
#     same distilled sets, reused byte for byte from the cache of distilled sets (the teacher that selects and labels
#     stays the protocol's), into GRID/<group>-<student> and its own section (<!-- bench:cpu-grid-<group>-<student> -->)
# Needs the saliency weights (python -m fgdd.weights fetch u2netp; make install does it).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
BENCH=${FGDD_BENCH_DIR:-$HOME/.cache/fgdd-bench}
GRID=${GRID:-$BENCH/outputs/cpu-grid}
BENCHMARKS=${BENCHMARKS:-BENCHMARKS.md}
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-300}
MIPC=${MIPC:-}
CAM=${CAM:-0}
PY=${PYTHON:-.venv/bin/python}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
ONLY_CELLS=${CELLS:-}
STUDENT=${STUDENT:-}
SCORE=${SCORE:-test}
case $SCORE in test) SUFFIX= ;; holdout) SUFFIX=-holdout ;; *) echo "SCORE must be test or holdout" >&2; exit 2 ;; esac
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1
DATASETS=("$@"); [ ${#DATASETS[@]} -gt 0 ] || DATASETS=(imagenette imagewoof cifar10)

extract() {  # archive (train/ val|test/ at its top) -> $BENCH/data/<folder>, once, atomically
  [ -d "$BENCH/data/$2" ] && return
  local partial; partial=$(mktemp -d "$BENCH/data/.extract-XXXX")
  tar -xzf "$SHARED/data/$1" -C "$partial" && mv "$partial" "$BENCH/data/$2"
}

kept_teacher() {  # the overrides that load a teacher kept in the repository (benchmarks/keep_teacher.py), if there is one,
  # from a copy under $BENCH/teachers/<its sha256>/: a path that is the same from every checkout of any commit that keeps
  # these weights, so a cell begun from one worktree resumes from another (fgdd.run refuses a run folder whose recorded
  # config differs, the teacher's path included)
  local file=benchmarks/teachers/$1.pth
  [ -f "$file" ] || return 0
  local folder; folder=$BENCH/teachers/$(sha256sum "$file" | cut -c1-12)
  if [ ! -f "$folder/$1.pth" ]; then
    mkdir -p "$folder" && cp "$file" "$folder/$1.pth.partial" && mv "$folder/$1.pth.partial" "$folder/$1.pth"
  fi
  echo "teacher=checkpoint teacher.checkpoint=$folder/$1.pth"
}

cell_args() {  # the overrides of one cell of the grid
  case $1 in
    random_real) echo "selector=random_real" ;;
    rded) echo "selector=rded" ;;
    fgdd-saliency-q*) echo "selector=fgdd segmenter=saliency threshold=quantile threshold.q=${1#fgdd-saliency-q}" ;;
    fgdd-saliency-always) echo "selector=fgdd segmenter=saliency threshold=always" ;;
    fgdd-cam-q*) echo "selector=fgdd segmenter=cam threshold=quantile threshold.q=${1#fgdd-cam-q}" ;;
    *) echo "unknown cell $1" >&2; return 2 ;;
  esac
}

mkdir -p "$BENCH/data" "$GRID"
COMMON=(data_root="$BENCH/data" cache_dir="$BENCH/cache" output_root="$BENCH/outputs" logger=csv
        evaluator.epochs="$EPOCHS" evaluator.num_workers=0 trainer.enable_progress_bar=false)
failed=0
for dataset in "${DATASETS[@]}"; do
  case $dataset in
    imagenette)
      extract imagenette2-128.tar.gz imagenette2-128
      ARGS=(experiment=cpu_imagenette_conv4 teacher.checkpoint="$(realpath "$SHARED/teachers/imagenette64_conv4.pth")")
      CELLS=(random_real rded fgdd-saliency-q0.5) ;;
    imagewoof)
      extract imagewoof2-128.tar.gz imagewoof2-128
      ARGS=(experiment=cpu_imagewoof_conv4)
      [ -n "${WOOF_TEACHER:-}" ] && ARGS+=(teacher=checkpoint teacher.checkpoint="$(realpath "$WOOF_TEACHER")")
      CELLS=(random_real rded fgdd-saliency-q0.5) ;;
    cifar10)
      extract cifar10-jpeg.tar.gz cifar10
      ARGS=(experiment=cpu_cifar10_conv3 teacher.checkpoint="$(realpath "$SHARED/teachers/cifar10_conv3.pth")")
      CELLS=(rded fgdd-saliency-q0.5 fgdd-saliency-q0.3 fgdd-saliency-q0.7 fgdd-saliency-always) ;;
    imagenette-conv5)
      extract imagenette2-128.tar.gz imagenette2-128
      ARGS=(experiment=rded_imagenette_conv5 segmenter=saliency)
      read -r -a KEPT <<< "$(kept_teacher imagenette_conv5)"; ARGS+=("${KEPT[@]}")
      CELLS=(random_real rded fgdd-saliency-q0.5) ;;
    imagewoof-conv5)
      extract imagewoof2-146.tar.gz imagewoof2-146
      ARGS=(experiment=rded_imagewoof_conv5 segmenter=saliency dataset.subdir=imagewoof2-146)
      read -r -a KEPT <<< "$(kept_teacher imagewoof_conv5)"; ARGS+=("${KEPT[@]}")
      CELLS=(random_real rded fgdd-saliency-q0.5) ;;
    *) echo "unknown dataset $dataset (imagenette, imagewoof, cifar10, imagenette-conv5, imagewoof-conv5)" >&2
       exit 2 ;;
  esac
  case $dataset in *-conv5) GROUPS_=(); for ipc in ${IPCS:-1 10}; do GROUPS_+=("$ipc"); done ;; *) GROUPS_=(-) ;; esac
  [ "$CAM" = 1 ] && CELLS+=(fgdd-cam-q0.5)
  [ -n "${ONLY_CELLS:-}" ] && read -r -a CELLS <<< "$ONLY_CELLS"
  for ipc in "${GROUPS_[@]}"; do
  name=$dataset; IPC_ARGS=()
  [ "$ipc" != - ] && { name=$dataset-ipc$ipc; IPC_ARGS=(ipc="$ipc"); }
  STUDENT_ARGS=(); [ -n "$STUDENT" ] && { name=$name-$STUDENT; STUDENT_ARGS=(model="$STUDENT"); }
  for seed in $SEEDS; do
    for cell in "${CELLS[@]}"; do
      run_dir=$GRID/$name$SUFFIX/$cell/seed$seed
      if [ -f "$run_dir/metrics.json" ]; then echo "done already: $dataset $cell seed $seed"; continue; fi
      read -r -a CELL <<< "$(cell_args "$cell")"
      [ -n "$MIPC" ] && [ "$cell" != random_real ] && CELL+=(selector.mipc="$MIPC")  # random_real draws no mipc
      [ "$SCORE" = holdout ] && CELL+=(evaluator=holdout)
      echo "=== $name $cell seed $seed -> $run_dir"
      if ! "$PY" -m fgdd.run "${COMMON[@]}" "${ARGS[@]}" "${IPC_ARGS[@]}" "${STUDENT_ARGS[@]}" "${CELL[@]}" "${EXTRA_ARGS[@]}" \
          seed="$seed" hydra.run.dir="$run_dir"; then
        echo "FAILED: $name $cell seed $seed (see $run_dir/failed.json); going on" >&2
        failed=$((failed + 1))
      fi
      # the table of everything finished so far, into BENCHMARKS.md, after every cell
      "$PY" benchmarks/cpu_grid_table.py "$GRID/$name$SUFFIX" --seeds $SEEDS --score "$SCORE" \
          --published experiments/rded_table2/published.csv \
        | "$PY" benchmarks/record.py "cpu-grid-$name$SUFFIX" --file "$BENCHMARKS" \
            --command "benchmarks/cpu_grid.sh $dataset (SEEDS=\"$SEEDS\"${IPC_ARGS:+ IPCS=$ipc}${STUDENT:+ STUDENT=$STUDENT} EPOCHS=$EPOCHS${MIPC:+ MIPC=$MIPC} CAM=$CAM SCORE=$SCORE${EXTRA:+ EXTRA=\"$EXTRA\"})"
    done
  done
  done
done
[ "$failed" = 0 ] || { echo "$failed cell(s) failed" >&2; exit 1; }
