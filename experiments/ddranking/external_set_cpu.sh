#!/usr/bin/env bash
# One external set scored end to end at a tiny CPU scale (BENCHMARKS.md, "An external set scored end to end"): an
# rded set of CIFAR-10 IPC 10 exported by fgdd.export, read back with selector=folder and put through DD-Ranking's
# controls beside random_real, then fgdd.report. Reductions: seed 0 only, EPOCHS (default 10) student epochs, the
# learning-rate grid LRS (default 0.001,0.01,0.1) on fgdd's holdout, one test evaluation per student (its final
# epoch), and no full-real run: HLR uses the reference teacher's accuracy given with --reference.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p "${OUT:=$HOME/.cache/fgdd-external}"
DATA=${FGDD_DATA:-$HOME/.cache/fgdd-test-data}         # holds cifar10-jpeg/{train,test}/<class>/*.jpg
TEACHER=${TEACHER:-$(realpath ../shared/teachers/cifar10_conv3.pth)}
EPOCHS=${EPOCHS:-10}
LRS=${LRS:-0.001,0.01,0.1}
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled FGDD_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
COMMON=(experiment=ddranking_cifar10_ipc10 data_root="$DATA" dataset.subdir=cifar10-jpeg teacher=checkpoint
        teacher.checkpoint="$TEACHER" cache_dir="$OUT/cache" output_root="$OUT" logger=csv seed=0
        evaluator.num_workers=0 trainer.enable_progress_bar=false device=cpu)
SOFT=(evaluator=rded,soft_noaug evaluator.epochs="$EPOCHS" evaluator.tail_fraction=0)
HARD=(evaluator=hard_lr_search evaluator.epochs="$EPOCHS" evaluator.inner.tail_fraction=0 "evaluator.lrs=[$LRS]")
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name=source selector=rded evaluator=rded evaluator.epochs="$EPOCHS" \
  evaluator.tail_fraction=0
source_run=$(dirname "$(ls -d "$OUT"/sweeps/source/cifar10/rded-*/metrics.json | head -1)")
[ -d "$OUT/export" ] || "$PY" -m fgdd.export "$source_run" "$OUT/export" --rounds 1
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name=external selector=folder selector.path="$OUT/export" "${SOFT[@]}"
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name=external-hard selector=folder selector.path="$OUT/export" "${HARD[@]}"
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name=random selector=random_real "${SOFT[@]}"
"$PY" -m fgdd.run -m "${COMMON[@]}" sweep_name=random-hard selector=random_real "${HARD[@]}"
"$PY" -m fgdd.report "$OUT/sweeps" --no-runs --reference cifar10:convnet3=0.8259 --markdown "$OUT/report.md"
