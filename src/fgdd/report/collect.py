"""Read run folders (config.yaml + metrics.json) under a sweep or output folder into flat rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` holding a config.yaml written by fgdd.run, sorted."""
    return sorted(p.parent for p in Path(root).rglob("config.yaml") if (p.parent / "run.json").exists())


def load_row(run_dir: Path) -> dict[str, Any]:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return {
        "run": str(run_dir),
        "dataset": config["dataset"]["name"],
        "selector": config["selector"]["name"],
        "student": config["model"]["name"],
        "teacher": config["teacher"]["arch"]["name"],
        "ipc": config["ipc"],
        "seed": config["seed"],
        "status": "done" if metrics else "unfinished",
        **metrics,
    }
