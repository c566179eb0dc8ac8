"""Slow: benchmarks/speed.py --quick runs every stage on the CPU and writes its table and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_benchmark_quick_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "FGDD_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "benchmarks/speed.py", "--quick", "--json", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| change | workload | before | after |" in done.stdout
    result = json.loads(out.read_text())
    stages = {row["stage"] for row in result["rows"]}
    assert {"teacher", "occupancy", "select", "student"} <= stages
    assert all(row["images_per_s"] > 0 and row["seconds"] > 0 for row in result["rows"])
    assert result["pairs"] and all(p["before_value"] > 0 and p["after_value"] > 0 for p in result["pairs"])
    stored = [row for row in result["rows"] if "soft_label_bytes_per_round" in row]
    assert stored and all(row["soft_label_bytes_per_round"] > 0 for row in stored)


@pytest.mark.slow
def test_reference_loop_benchmark_quick_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "reference.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "FGDD_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "benchmarks/reference_loop.py", "--quick", "--case", "32", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "vs reference" in done.stdout
    [case] = json.loads(out.read_text())["cases"]
    loops = case["loops"]
    assert set(loops) == {"reference (RDED's loop)", "fgdd default"}
    assert all(row["images_per_s"] > 0 and row["ratio"] > 0 for row in loops.values())
    assert loops["reference (RDED's loop)"]["ratio"] == 1.0
    assert set(case["raw_step"]) == {"fp32", "channels_last", "bf16", "bf16 + channels_last"}
    assert all(v > 0 for v in case["validation"].values())


@pytest.mark.slow
def test_regime_speed_benchmark_tiny_on_cpu(tmp_path: Path) -> None:
    # benchmarks/regime_speed.py: the 128 px teacher and student loops beside their raw steps, one row per precision
    out = tmp_path / "regime.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled", "FGDD_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "benchmarks/regime_speed.py", "--repeats", "1", "--teacher-images", "64",
                           "--teacher-epochs", "2", "--student-epochs", "3", "--steps", "1", "--precisions", "fp32",
                           "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| loop | precision | loop images/s | raw step images/s | loop / raw |" in done.stdout
    result = json.loads(out.read_text())
    assert {"cpu", "capability", "native_bf16", "threads"} <= set(result)
    assert [row["precision"] for row in result["rows"]] == ["fp32", "fp32"]
    assert all(row["loop_rate"] > 0 and row["raw_rate"] > 0 for row in result["rows"])
