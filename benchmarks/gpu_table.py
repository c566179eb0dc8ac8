"""Print benchmarks/gpu.sh's one table: per distillation run (teacher, rded, fgdd) its accuracy and stage times,
then the per-stage throughput rows measured by benchmarks/speed.py.

Usage: python benchmarks/gpu_table.py <sweep folder> <speed.json> [<reference_loop.json>]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def run_rows(sweep: Path) -> list[list[str]]:
    rows = []
    for metrics_path in sorted(sweep.rglob("metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        config = yaml.safe_load((metrics_path.parent / "config.yaml").read_text())
        selector = config["selector"]["name"]
        label = f"{selector}({config['selector']['segmenter']['name']})" if selector == "fgdd" else selector
        rows.append([
            f"{config['dataset']['name']} {config['dataset']['input_size']} px, {config['model']['name']}, "
            f"ipc {config['ipc']}, {label}",
            f"teacher {100 * metrics['teacher/val_top1']:.1f} %, student {100 * metrics['student/top1_final']:.1f} % "
            f"(best of tail {100 * metrics['student/top1_best_tail']:.1f} %)",
            f"teacher {metrics['time/teacher_s']:.0f} s, select {metrics['time/select_s']:.0f} s, "
            f"student {metrics['time/student_s']:.0f} s",
        ])
    return rows


def speed_rows(speed: Any) -> list[list[str]]:
    rows = speed["rows"] if isinstance(speed, dict) and "rows" in speed else speed
    table = []
    for row in rows:
        name = row.get("stage", "?") + (f" ({row['setting']})" if row.get("setting") else "")
        rate = f"{row['images_per_s']:.1f} images/s" if row.get("images_per_s") is not None else "-"
        seconds = f"{row['seconds']:.3f} s" if row.get("seconds") is not None else "-"
        table.append([name, rate, seconds])
    return table


def reference_rows(reference: Any) -> list[list[str]]:
    # benchmarks/reference_loop.py: each loop's training images/s and its ratio to RDED's loop, then the raw limit
    table = []
    for case in reference["cases"]:
        for name, row in case["loops"].items():
            table.append([f"student loop ({case['case']}): {name}", f"{row['images_per_s']:.1f} images/s",
                          f"{row['ratio']:.2f}x RDED's loop"])
        limits = ", ".join(f"{k} {v:.0f}" for k, v in case["raw_step"].items())
        table.append([f"student loop ({case['case']}): raw training step", f"{limits} images/s", "-"])
    return table


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    sweep, speed_path = Path(argv[0]), Path(argv[1])
    lines = ["| what | result | time |", "|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in run_rows(sweep)]
    if speed_path.exists():
        lines += [f"| {' | '.join(row)} |" for row in speed_rows(json.loads(speed_path.read_text()))]
    if len(argv) == 3 and Path(argv[2]).exists():
        lines += [f"| {' | '.join(row)} |" for row in reference_rows(json.loads(Path(argv[2]).read_text()))]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
