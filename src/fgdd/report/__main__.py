"""``python -m fgdd.report <folder>``: every run under a folder, and mean +- std over seeds per setting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fgdd.report.collect import aggregate, find_runs, load_row

RUN_COLUMNS = [
    ("dataset", "dataset", str),
    ("method", "method", str),
    ("student", "student", str),
    ("ipc", "ipc", str),
    ("seed", "seed", str),
    ("teacher/val_top1", "teacher top-1", "pct"),
    ("student/top1_final", "student top-1 (final)", "pct"),
    ("student/top1_best_tail", "best of last 20% (RDED-style)", "pct"),
    ("time/select_s", "select s", "sec"),
    ("time/student_s", "student s", "sec"),
    ("status", "status", str),
]


def format_cell(value: object, kind: object) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * float(value):.1f}"
    if kind == "sec":
        return f"{float(value):.1f}"
    return str(value)


def summary_markdown(summary: list[dict], metric: str) -> str:
    lines = [f"| dataset | student | ipc | method | {metric} (%, mean +- std) | seeds | teacher top-1 (%) |",
             "|---|---|---|---|---|---|---|"]
    for row in summary:
        cell = "-" if row["mean"] is None else f"{100 * row['mean']:.1f} +- {100 * row['std']:.1f}"
        teacher = "-" if row["teacher"] is None else f"{100 * row['teacher']:.1f}"
        missing = f" ({row['unfinished']} unfinished)" if row["unfinished"] else ""
        lines.append(f"| {row['dataset']} | {row['student']} | {row['ipc']} | {row['method']} | {cell} | "
                     f"{row['seeds']}{missing} | {teacher} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.report", description=__doc__)
    parser.add_argument("folder", type=Path, help="a run, sweep or output folder")
    parser.add_argument("--metric", default="student/top1_final", help="the metric averaged over seeds")
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"fgdd.report: error: {args.folder} does not exist", file=sys.stderr)
        return 2
    rows = [load_row(run) for run in find_runs(args.folder)]
    if not rows:
        print(f"fgdd.report: error: no fgdd run folders under {args.folder}", file=sys.stderr)
        return 2
    table = Table(title=f"fgdd runs under {args.folder}")
    for _, title, _ in RUN_COLUMNS:
        table.add_column(title)
    for row in sorted(rows, key=lambda r: (r["dataset"], r["ipc"], r["method"], r["seed"])):
        table.add_row(*(format_cell(row.get(key), kind) for key, _, kind in RUN_COLUMNS))
    console = Console(width=220)
    console.print(table)
    console.print(summary_markdown(aggregate(rows, args.metric), args.metric), markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
