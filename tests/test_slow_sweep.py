"""Slow: a CPU-sized sweep on real CIFAR-10 (IPC 1 and 10, 2 seeds) from one command, killed midway, rerun:
it finishes without redoing finished jobs, and fgdd.report prints the table (the README shows this command)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ENV = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled"}


def sweep_command(data_root: Path, teacher: Path, tmp_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "fgdd.run", "-m", "dataset=cifar10", "dataset.subdir=cifar10-jpeg",
        f"data_root={data_root}", f"cache_dir={tmp_path / 'cache'}", f"output_root={tmp_path / 'outputs'}",
        "sweep_name=cifar10-small", "model=convnet3", "model@teacher.arch=convnet3", "teacher=checkpoint",
        f"teacher.checkpoint={teacher}", "ipc=1,10", "seed=0,1", "selector=rded", "selector.mipc=100",
        "evaluator.epochs=20", "evaluator.num_workers=0", "trainer.enable_progress_bar=false",
    ]


def test_a_killed_sweep_is_finished_by_running_it_again(shared_data, shared_teachers, tmp_path) -> None:
    command = sweep_command(shared_data("cifar10-jpeg").parent, shared_teachers / "cifar10_conv3.pth", tmp_path)
    sweep = tmp_path / "outputs" / "sweeps" / "cifar10-small"

    first = subprocess.Popen(command, env=ENV, cwd=tmp_path, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 1200
    while not list(sweep.rglob("metrics.json")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(1)
    os.killpg(first.pid, signal.SIGKILL)  # a lost node: no clean-up of any kind
    first.wait()
    finished = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sweep.rglob("metrics.json")}
    assert 1 <= len(finished) < 4
    # every file of a finished job (.hydra/*.yaml and run.log included) is left as it is by the rerun
    untouched = {f: (f.stat().st_mtime_ns, f.read_bytes()) for p in finished for f in p.parent.rglob("*") if f.is_file()}

    again = subprocess.run(command, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=2400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    results = sorted(sweep.rglob("metrics.json"))
    assert len(results) == 4
    for path, (mtime, content) in untouched.items():  # finished jobs were skipped, not redone
        assert (path.stat().st_mtime_ns, path.read_bytes()) == (mtime, content), path
    assert again.stdout.count("run already finished") == len(finished)
    for path in results:
        metrics = json.loads(path.read_text())
        assert metrics["teacher/val_top1"] > 0.8  # the reference teacher on the 10,000 test images
        assert metrics["student/top1_final"] > 0.15  # students learn from 1 or 10 real mosaics per class

    report = subprocess.run([sys.executable, "-m", "fgdd.report", str(sweep), "--csv", str(tmp_path / "table.csv")],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "cifar10" in report.stdout and "rded" in report.stdout
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # header + one row per ipc (2 seeds each)
