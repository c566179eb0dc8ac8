"""Shared fixtures: real archives from ../shared/data extracted once into a cache folder, offline env."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FGDD_SHARED_DIR", REPO.parent / "shared"))
CACHE = Path(os.environ.get("FGDD_TEST_CACHE", Path.home() / ".cache" / "fgdd-test-data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("FGDD_OFFLINE", "1")


def pytest_report_header() -> str:
    # what the digits depend on: the suite runs alike under ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (.ci/run)
    # and with FGDD_AUTO_PRECISION=fp32 (precision=auto resolved as on a CPU without native bf16)
    import torch

    from fgdd.utils.precision import AUTO_OVERRIDE, native_bf16

    return (f"fgdd: CPU kernels {torch.backends.cpu.get_cpu_capability()}, native bf16 {native_bf16('cpu')}, "
            f"{AUTO_OVERRIDE}={os.environ.get(AUTO_OVERRIDE, '(unset)')}")


def _extract_once(name: str) -> Path:
    archive = SHARED / "data" / f"{name}.tar.gz"
    dest = CACHE / name
    done = dest / ".extracted"
    if done.exists():
        return dest
    if not archive.exists():
        pytest.skip(f"real data archive {archive} is not available")
    tmp = CACHE / f".{name}.partial-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    tmp.joinpath(".extracted").touch()
    try:
        tmp.rename(dest)
    except OSError:  # another worker finished first
        pass
    return dest


@pytest.fixture(scope="session")
def shared_data() -> Callable[[str], Path]:
    """``shared_data("cifar10-jpeg")`` -> folder holding the extracted archive (train/, test/ ...)."""
    return _extract_once


@pytest.fixture(scope="session")
def shared_teachers() -> Path:
    path = SHARED / "teachers"
    if not path.exists():
        pytest.skip(f"reference teachers {path} are not available")
    return path
