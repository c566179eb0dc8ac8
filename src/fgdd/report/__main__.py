"""``python -m fgdd.report <folder>``: one table of every run under a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fgdd.report.collect import find_runs, load_row

COLUMNS = [
    ("dataset", "dataset", str),
    ("selector", "selector", str),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.report", description=__doc__)
    parser.add_argument("folder", type=Path, help="a run, sweep or output folder")
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"fgdd.report: error: {args.folder} does not exist", file=sys.stderr)
        return 2
    rows = [load_row(run) for run in find_runs(args.folder)]
    if not rows:
        print(f"fgdd.report: error: no fgdd run folders under {args.folder}", file=sys.stderr)
        return 2
    table = Table(title=f"fgdd runs under {args.folder}")
    for _, title, _ in COLUMNS:
        table.add_column(title)
    for row in sorted(rows, key=lambda r: (r["dataset"], r["ipc"], r["selector"], r["seed"])):
        table.add_row(*(format_cell(row.get(key), kind) for key, _, kind in COLUMNS))
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
