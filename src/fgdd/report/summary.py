"""Rows -> one cell per (dataset, student, teacher, ipc, method, evaluator): mean and std over seeds, costs,
and the published number with the difference."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from fgdd.report.collect import DONE, FAILED, UNFINISHED
from fgdd.report.published import Key, Published, lookup

CELL_KEY = ("dataset", "student", "teacher", "ipc", "method", "evaluator")
BASELINES_FIRST = {"random_real": 0, "rded": 1}  # then every other selector, by name


def _values(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _precision(rows: list[dict[str, Any]]) -> str:
    """One label when every run computed alike; otherwise each label with its count, so a mean over runs of
    different precisions shows as such."""
    labels = Counter(r.get("precision", "-") for r in rows)
    if len(labels) <= 1:
        return next(iter(labels), "-")
    return "mixed: " + ", ".join(f"{label} x{n}" for label, n in sorted(labels.items()))


def _sort_key(cell: dict[str, Any]) -> tuple:
    return (cell["dataset"], cell["student"], cell["teacher"], cell["ipc"],
            BASELINES_FIRST.get(cell["selector"], 2), cell["method"], cell["evaluator"])


def aggregate(
    rows: list[dict[str, Any]], metric: str, published: dict[Key, Published] | None = None
) -> list[dict[str, Any]]:
    """Accuracies stay fractions; ``published`` numbers are put beside top-1 metrics only (they are top-1)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in CELL_KEY), []).append(row)
    cells = []
    for key, members in groups.items():
        done = [m for m in members if m["status"] == DONE and m.get(metric) is not None]
        values = _values(done, metric)
        cell: dict[str, Any] = dict(zip(CELL_KEY, key))
        cell["selector"] = members[0]["selector"]
        teacher_top1 = _values(done, "teacher/val_top1")
        cell.update({
            "seeds": len(values),
            "seed_list": sorted(m["seed"] for m in done),
            "failed": sum(m["status"] == FAILED for m in members),
            "unfinished": sum(m["status"] == UNFINISHED for m in members),
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
            "teacher_top1": statistics.fmean(teacher_top1) if teacher_top1 else None,
            "precision": _precision(done),
            # medians: one slow run (a busy machine, a cold cache) does not move the cost of a cell
            "distill_s": _median(_values(done, "cost/distill_s")),
            "distilled_bytes": _median(_values(done, "cost/distilled_bytes")),
            "soft_label_bytes": _median(_values(done, "cost/soft_label_bytes")),
        })
        hit = lookup(published, cell) if published and metric.startswith("student/top1") else None
        cell["published"] = hit.top1 if hit else None
        cell["published_source"] = hit.source if hit else None
        cell["diff"] = cell["mean"] - cell["published"] if None not in (cell["mean"], cell["published"]) else None
        cells.append(cell)
    return sorted(cells, key=_sort_key)
