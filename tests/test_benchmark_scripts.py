"""The benchmark tooling: BENCHMARKS.md sections are replaced in place; gpu.sh runs end to end on CPU (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import record  # noqa: E402


def test_record_replaces_its_section_and_keeps_the_rest(tmp_path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# fgdd benchmarks\n\nhand-written text\n")
    record.record(path, "speed", "| a |\n|---|\n| 1 |\n", "speed.py")
    record.record(path, "accuracy", "| b |\n|---|\n| 2 |\n", "accuracy.sh")
    record.record(path, "speed", "| a |\n|---|\n| 3 |\n", "speed.py --repeats 5")
    text = path.read_text()
    assert text.startswith("# fgdd benchmarks\n\nhand-written text\n")
    assert text.count("<!-- bench:speed -->") == 1 and "| 3 |" in text and "| 1 |" not in text
    assert "`speed.py --repeats 5`" in text and "| 2 |" in text
    assert text.index("bench:speed") < text.index("bench:accuracy")  # replaced where it was


@pytest.mark.slow
def test_gpu_script_runs_in_its_reduced_cpu_mode(shared_data, tmp_path) -> None:
    data = shared_data("imagenette2-128").parent
    env = {**os.environ, "FGDD_GPU_SMOKE": "1", "FGDD_DATA_DIR": str(data), "FGDD_GPU_WORK": str(tmp_path),
           "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh")], env=env, capture_output=True, text=True,
                            timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "rded" in table and "fgdd(cam)" in table and "images/s" in table
