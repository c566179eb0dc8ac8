"""``python -m fgdd.report <folder>``: every run under a folder (a run, a sweep, or many sweeps), then one line
per (dataset, student, teacher, ipc, method, evaluator): mean +- std over seeds, the published number and the
difference, teacher top-1 and costs; then the jobs of each sweep's grid that are missing, failed or unfinished."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fgdd.report.collect import find_runs, load_row
from fgdd.report.published import load_published
from fgdd.report.status import runs_markdown, sweeps_markdown
from fgdd.report.summary import aggregate
from fgdd.report.sweep import Grid, find_grids
from fgdd.report.table import runs_table, summary_csv, summary_markdown


def report_markdown(folder: Path, rows: list[dict[str, Any]], cells: list[dict[str, Any]], grids: list[Grid],
                    metric: str, published: Path | None) -> str:
    parts = [f"## {metric} per cell: {folder}", summary_markdown(cells, metric)]
    if published is not None:
        sources = sorted({c["published_source"] for c in cells if c["published_source"]})
        parts.append(f"Published numbers from `{published}` (diff = mean - published, in points); sources: "
                     f"{'; '.join(sources) if sources else 'none of its rows match a cell here'}.")
    for section in (sweeps_markdown(grids, rows, folder), runs_markdown(rows, folder, grids)):
        if section:
            parts.append(section)
    return "\n\n".join(parts) + "\n"


def write_atomically(path: Path, text: str) -> None:
    from fgdd.utils.io import atomic_write_text  # imports torch: only when a file is asked for

    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.report", description=__doc__)
    parser.add_argument("folder", type=Path, help="a run, sweep or output folder")
    parser.add_argument("--metric", default="student/top1_final", help="the metric averaged over seeds")
    parser.add_argument("--published", type=Path, help="CSV of published numbers (experiments/<table>/published.csv)")
    parser.add_argument("--csv", type=Path, help="also write the per-cell table as CSV here")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    parser.add_argument("--no-runs", action="store_true", help="leave out the table of every run")
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"fgdd.report: error: {args.folder} does not exist", file=sys.stderr)
        return 2
    try:
        published = load_published(args.published) if args.published else None
    except (OSError, ValueError) as error:
        print(f"fgdd.report: error: {error}", file=sys.stderr)
        return 2
    rows = [load_row(run) for run in find_runs(args.folder)]
    if not rows:
        print(f"fgdd.report: error: no fgdd run folders under {args.folder}", file=sys.stderr)
        return 2
    grids = find_grids(args.folder)
    cells = aggregate(rows, args.metric, published)
    if not args.no_runs:
        Console(width=240).print(runs_table(rows, f"fgdd runs under {args.folder}"))
    markdown = report_markdown(args.folder, rows, cells, grids, args.metric, args.published)
    print(markdown, end="")
    if args.csv:
        write_atomically(args.csv, summary_csv(cells))
    if args.markdown:
        write_atomically(args.markdown, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
