"""trainer=ddp: two CPU processes under torchrun (gloo) run one distillation; rank 0 alone selects and writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.test_run import TINY, TINY_SHAPES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_processes_trains_teacher_and_student_and_writes_one_run(tmp_path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    env = {**os.environ, "FGDD_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [torchrun, "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "fgdd.run", *TINY_SHAPES, *TINY,
         "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
         "trainer.deterministic=true", f"data_root={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["student/top1_final"] <= 1.0
    assert "rank 1: the distilled set is ready" in output  # rank 1 waited for rank 0's set instead of selecting
    assert not list(run_dir.glob(".distilled.partial-*"))
    assert not (run_dir / "resume").exists()  # the student's checkpoint (every rank's CutMix stream) served its run
    assert len(list((tmp_path / "cache" / "teachers").glob("*/teacher.pth"))) == 1
