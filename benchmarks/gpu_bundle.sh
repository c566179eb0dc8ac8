#!/usr/bin/env bash
# Fill .gpu/ (ignored) with what benchmarks/gpu.sh needs on the GPU machine, which has torch, lightning,
# transformers and timm but no index and no ../shared: wheels for Python 3.12 x86-64 of the packages it lacks,
# the 128 px ImageNette archive and the saliency segmenter's weights. Usage: benchmarks/gpu_bundle.sh   (needs the package index and ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${FGDD_SHARED_DIR:-../shared}
PY=${PYTHON:-.venv/bin/python}
mkdir -p .gpu/wheels
# the versions installed here (the ones fgdd is tested with); sdists are built into pure-Python wheels
PACKAGES=(hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 iopath==0.1.10 portalocker==4.4.2)
"$PY" -m pip download -q --no-deps -d .gpu/downloads "${PACKAGES[@]}"
for sdist in .gpu/downloads/*.tar.gz; do
  [ -e "$sdist" ] && "$PY" -m pip wheel -q --no-deps -w .gpu/wheels "$sdist"
done
cp -n .gpu/downloads/*.whl .gpu/wheels/ 2>/dev/null || true
# sam2 ships as a source archive: a pure-Python wheel without the CUDA extension, as fgdd installs it
ls .gpu/wheels/sam2-*.whl >/dev/null 2>&1 || SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation \
  -w .gpu/wheels sam2==1.1.0
# SALIENCY=1: segmenter=saliency there too: onnxruntime (CPU provider; its deps numpy, packaging, protobuf are on the
# machine, flatbuffers is not) as Python 3.12 x86-64 wheels (28 MB) and the u2netp weights (python -m fgdd.weights
# fetch, checked by sha256). Off by default: with the 49 MB archive the bundle would pass the device tool's 64 MiB carry
# limit, so a saliency run on the device needs a smaller archive there (not built yet: no GPU was lent so far).
if [ "${SALIENCY:-0}" = 1 ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 -d .gpu/wheels onnxruntime==1.32.0 flatbuffers
  FGDD_WEIGHTS_DIR=.gpu/weights "$PY" -m fgdd.weights fetch u2netp
fi
cp -n "$SHARED/data/imagenette2-128.tar.gz" .gpu/
du -sh .gpu/wheels .gpu/*.tar.gz
