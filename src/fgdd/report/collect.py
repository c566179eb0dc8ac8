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
        "method": method_label(config["selector"]),
        "student": config["model"]["name"],
        "teacher": config["teacher"]["arch"]["name"],
        "ipc": config["ipc"],
        "seed": config["seed"],
        "status": "done" if metrics else "unfinished",
        **metrics,
    }


def method_label(selector: dict[str, Any]) -> str:
    """The selector's name, plus its foreground settings where it has them: ``fgdd(cam, quantile 0.7)``."""
    if "segmenter" not in selector:
        return selector["name"]
    threshold = selector["threshold"]
    detail = " ".join(str(v) for k, v in threshold.items() if k not in ("_target_", "name"))
    parts = [selector["segmenter"]["name"], f"{threshold['name']} {detail}".strip()]
    if selector.get("resize_to", "cell") != "cell":
        parts.append(f"resize_to={selector['resize_to']}")
    if not selector.get("compete", True):
        parts.append("no competition")
    return f"{selector['name']}({', '.join(parts)})"


def aggregate(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Mean and standard deviation of ``metric`` over seeds, per (dataset, student, ipc, method)."""
    import statistics

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["student"], row["ipc"], row["method"]), []).append(row)
    table = []
    for (dataset, student, ipc, method), members in sorted(groups.items()):
        values = [float(m[metric]) for m in members if metric in m]
        table.append({
            "dataset": dataset, "student": student, "ipc": ipc, "method": method,
            "seeds": len(values), "unfinished": len(members) - len(values),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
            "teacher": statistics.fmean(float(m["teacher/val_top1"]) for m in members if "teacher/val_top1" in m)
            if values else None,
        })
    return table
