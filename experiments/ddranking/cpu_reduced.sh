#!/usr/bin/env bash
# DD-Ranking's scores for random_real, rded and fgdd (cam) on CIFAR-10 IPC 10 with a protocol reduced for a shared
# 2-core CPU (BENCHMARKS.md, "Fair evaluation (DD-Ranking scores)"): about an hour per seed for the students, and
# 1.5 h for the 2-epoch reference beside them, with ten busy processes on the two cores. Reductions against
# experiment=ddranking_cifar10_ipc10 (itself DD-Ranking's protocol with fgdd's students):
#   - SEEDS (default 0) instead of 0..4, and the full-real reference for REF_SEEDS (default 0) only: HLR then uses it
#     for every seed, as DD-Ranking does with its cached reference accuracies;
#   - EPOCHS (default 50) student epochs instead of 300, for every distilled-set student;
#   - LRS (default 0.001,0.01,0.1) instead of DD-Ranking's five learning rates;
#   - hard-label lr search for rded and fgdd only (random_real's HLR is not needed for any score);
#   - REF_EPOCHS (default 2) epochs for the full-real reference instead of 200;
#   - one test-set evaluation per student, at its final epoch (tail_fraction=0; the final epoch is fgdd's reported
#     number anyway), since a pass over the 10,000 test images costs minutes on the shared cores.
# Three sweeps under $OUT/sweeps (soft-label controls, hard-label control, reference), run side by side (one thread
# each); then one fgdd.report over all three. Finished runs are skipped: rerunning only runs what is missing.
#
# PROTOCOL=exact runs experiment=ddranking_exact_cifar10_ipc10 instead (DD-Ranking's protocol as its code runs it:
# learning rates chosen on the test set, the random baseline's soft-label rate searched too, the best of the test
# evaluations every 20 epochs, SGD with a step at epoch 100 for the reference) with the same reductions, except that
# the evaluations every 20 epochs stay (they are what the protocol reports), and the report scores
# student/top1_best_tail, DD-Ranking's number. Its sweeps are named exact-soft, exact-soft-noaug, exact-hard and
# exact-reference.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p "${OUT:=$HOME/.cache/fgdd-ddranking}"
DATA=${FGDD_DATA:-$HOME/.cache/fgdd-test-data}         # holds cifar10-jpeg/{train,test}/<class>/*.jpg
TEACHER=${TEACHER:-$(realpath ../shared/teachers/cifar10_conv3.pth)}
SEEDS=${SEEDS:-0}
REF_SEEDS=${REF_SEEDS:-0}
EPOCHS=${EPOCHS:-50}
LRS=${LRS:-0.001,0.01,0.1}
REF_EPOCHS=${REF_EPOCHS:-2}
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=${WANDB_MODE:-disabled} FGDD_OFFLINE=1 OMP_NUM_THREADS=1
PROTOCOL=${PROTOCOL:-fgdd}
case $PROTOCOL in
  fgdd) EXPERIMENT=ddranking_cifar10_ipc10 PREFIX= METRIC=student/top1_final
        SOFT=(soft=rded,soft_noaug) HARD=hard_lr_search REFERENCE=full_real LR_GRID=()
        ONCE=(evaluator.tail_fraction=0) INNER_ONCE=(evaluator.inner.tail_fraction=0) ;;
  exact) EXPERIMENT=ddranking_exact_cifar10_ipc10 PREFIX=exact- METRIC=student/top1_best_tail
         SOFT=(exact-soft=ddranking_rded exact-soft-noaug=ddranking_soft_noaug) HARD=ddranking_hard_lr_search REFERENCE=ddranking_full_real
         LR_GRID=("evaluator.lrs=[$LRS]") ONCE=() INNER_ONCE=() ;;
  *) echo "PROTOCOL must be fgdd or exact" >&2; exit 2 ;;
esac
COMMON=(experiment="$EXPERIMENT" data_root="$DATA" dataset.subdir=cifar10-jpeg teacher=checkpoint
        teacher.checkpoint="$TEACHER" segmenter=cam cache_dir="$OUT/cache" output_root="$OUT" logger=csv
        evaluator.num_workers=0 trainer.enable_progress_bar=false device=cpu)
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name="${PREFIX}reference" seed="$REF_SEEDS" selector=random_real \
  evaluator="$REFERENCE" evaluator.epochs="$REF_EPOCHS" "${INNER_ONCE[@]}" > "$OUT.${PREFIX}reference.log" 2>&1 &
reference=$!
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name="${PREFIX}hard" seed="$SEEDS" selector=rded,fgdd evaluator="$HARD" \
  evaluator.epochs="$EPOCHS" "${INNER_ONCE[@]}" "evaluator.lrs=[$LRS]" > "$OUT.${PREFIX}hard.log" 2>&1 &
hard=$!
# exact: one sweep per soft-label evaluator, since Hydra applies evaluator.lrs before it sweeps the evaluator group
for sweep in "${SOFT[@]}"; do
  "$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name="${sweep%%=*}" seed="$SEEDS" selector=random_real,rded,fgdd \
    evaluator="${sweep#*=}" evaluator.epochs="$EPOCHS" "${ONCE[@]}" "${LR_GRID[@]}"
done
wait "$reference" "$hard"
# both protocols' rows may sit under one $OUT: the report groups DD-Ranking's exact rows apart from fgdd's
"$PY" -m fgdd.report "$OUT/sweeps" --no-runs --metric "$METRIC" --markdown "$OUT/${PREFIX}report.md" \
  --figures "$OUT/${PREFIX}figures"
