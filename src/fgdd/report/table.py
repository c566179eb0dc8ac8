"""Cells -> a Markdown table or CSV; runs -> a rich table. Accuracies in percent, sizes in MB (10^6 bytes)."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.table import Table

from fgdd.report.collect import FAILED, stopped_by_a_signal

MB = 1e6

CSV_COLUMNS = [
    "dataset", "student", "teacher", "ipc", "method", "evaluator", "mean_pct", "std_pct", "seeds", "failed",
    "unfinished", "published_pct", "diff_pct", "published_source", "teacher_top1_pct", "distill_s_median",
    "distilled_mb", "soft_label_mb", "precision",
]

RUN_COLUMNS = [
    ("dataset", "dataset", str),
    ("method", "method", str),
    ("student", "student", str),
    ("evaluator", "evaluator", str),
    ("ipc", "ipc", str),
    ("seed", "seed", str),
    ("teacher/val_top1", "teacher top-1", "pct"),
    ("student/top1_final", "student top-1 (final)", "pct"),
    ("student/top1_best_tail", "best of last 20% (RDED-style)", "pct"),
    ("cost/distill_s", "distill s", "sec"),
    ("time/student_s", "student s", "sec"),
    ("cost/distilled_bytes", "distilled MB", "mb"),
    ("precision", "precision", str),
    ("status", "status", str),
]


def _pct(value: float | None, digits: int = 1, sign: bool = False) -> str:
    return "-" if value is None else f"{100 * value:{'+' if sign else ''}.{digits}f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.2f}"


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


FORMATS = {"pct": _pct, "sec": _sec, "mb": _mb}


def format_cell(value: object, kind: object) -> str:
    if value is None:
        return "-"
    return FORMATS[kind](float(value)) if kind in FORMATS else str(value)


def seeds_text(cell: dict[str, Any]) -> str:
    extra = [f"{cell[k]} {k}" for k in ("failed", "unfinished") if cell[k]]
    return f"{cell['seeds']}" + (f" ({', '.join(extra)})" if extra else "")


def summary_markdown(cells: list[dict[str, Any]], metric: str) -> str:
    lines = [
        f"| dataset | student | teacher | ipc | method | evaluator | {metric} (%, mean +- std) | seeds | "
        "published (%) | diff (points) | teacher top-1 (%) | distill s (median) | distilled MB | soft labels MB | "
        "precision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        value = "-" if c["mean"] is None else f"{_pct(c['mean'])} +- {_pct(c['std'])}"
        lines.append(
            f"| {c['dataset']} | {c['student']} | {c['teacher']} | {c['ipc']} | {c['method']} | {c['evaluator']} | "
            f"{value} | {seeds_text(c)} | {_pct(c['published'])} | {_pct(c['diff'], sign=True)} | "
            f"{_pct(c['teacher_top1'])} | {_sec(c['distill_s'])} | {_mb(c['distilled_bytes'])} | "
            f"{_mb(c['soft_label_bytes'])} | {c['precision']} |"
        )
    return "\n".join(lines)


def _num(value: float | None, scale: float = 1.0, digits: int = 4) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


def summary_csv(cells: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for c in cells:
        writer.writerow({
            **{k: c[k] for k in ("dataset", "student", "teacher", "ipc", "method", "evaluator", "seeds", "failed",
                                 "unfinished", "precision")},
            "mean_pct": _num(c["mean"], 100, 2), "std_pct": _num(c["std"], 100, 2),
            "published_pct": _num(c["published"], 100, 2), "diff_pct": _num(c["diff"], 100, 2),
            "published_source": c["published_source"] or "",
            "teacher_top1_pct": _num(c["teacher_top1"], 100, 2), "distill_s_median": _num(c["distill_s"], 1, 1),
            "distilled_mb": _num(c["distilled_bytes"], 1 / MB), "soft_label_mb": _num(c["soft_label_bytes"], 1 / MB),
        })
    return buffer.getvalue()


def runs_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for _, header, _ in RUN_COLUMNS:
        table.add_column(header)
    for row in sorted(rows, key=lambda r: (r["dataset"], r["ipc"], r["method"], r["student"], r["evaluator"],
                                           r["seed"])):
        cells = [format_cell(row.get(key), kind) for key, _, kind in RUN_COLUMNS]
        if row["status"] == FAILED and row.get("failure"):
            word = "stopped" if stopped_by_a_signal(row["failure"]) else "failed"
            cells[-1] = f"{word} ({row['failure'].get('stage', '?')})"
        table.add_row(*cells)
    return table
