"""``python -m fgdd.report <folder>``: every run under a folder (a run, a sweep, or many sweeps), then one line
per (dataset, student, teacher, ipc, method, evaluator): mean +- std over seeds, the published number and the
difference, teacher top-1 and costs; DD-Ranking's scores (IOR, HLR, LRS, ARS) where the runs hold its controls
(or ``--controls``), with the command for each control still missing; then the jobs of each sweep's grid that are
missing, failed or unfinished; last, one line saying where the run folders (and figures) are. ``--figures DIR``
draws the sweep's figures (and logs them to W&B when the runs logged there)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fgdd.report.collect import find_runs, load_row
from fgdd.report.published import load_published
from fgdd.report.scores import (
    ARS_WEIGHT,
    LRS_WEIGHT,
    annotate,
    compute_scores,
    holds_controls,
    missing_controls,
    parse_reference,
    scores_markdown,
)
from fgdd.report.status import runs_markdown, sweeps_markdown
from fgdd.report.summary import aggregate
from fgdd.report.sweep import Grid, find_grids
from fgdd.report.table import runs_table, summary_csv, summary_markdown


def report_markdown(folder: Path, rows: list[dict[str, Any]], cells: list[dict[str, Any]], grids: list[Grid],
                    metric: str, published: Path | None, scores: str = "") -> str:
    parts = [f"## {metric} per cell: {folder}", summary_markdown(cells, metric)]
    if published is not None:
        sources = sorted({c["published_source"] for c in cells if c["published_source"]})
        parts.append(f"Published numbers from `{published}` (diff = mean - published, in points); sources: "
                     f"{'; '.join(sources) if sources else 'none of its rows match a cell here'}.")
    if scores:
        parts.append(scores)
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
    parser.add_argument("--figures", type=Path, help="write the sweep's figures (PNG) into this folder")
    parser.add_argument("--controls", action=argparse.BooleanOptionalAction, default=None,
                        help="DD-Ranking's scores with the commands for its missing controls (default: only when the "
                             "runs hold a control other than the method's recipe: soft_noaug, hard_lr_search, "
                             "full_real)"),
    parser.add_argument("--lrs-weight", type=float, default=LRS_WEIGHT, help="DD-Ranking's w in LRS (default 0.5)")
    parser.add_argument("--ars-weight", type=float, default=ARS_WEIGHT, help="DD-Ranking's weight in ARS (0.5)")
    parser.add_argument("--reference", action="append", default=[], metavar="DATASET:STUDENT=ACC",
                        help="a full-real accuracy measured elsewhere, for HLR where no full_real run finished "
                             "(repeatable; e.g. cifar10:convnet3=0.826)")
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"fgdd.report: error: {args.folder} does not exist", file=sys.stderr)
        return 2
    try:
        published = load_published(args.published) if args.published else None
        given = dict(parse_reference(text) for text in args.reference)
    except (OSError, ValueError) as error:
        print(f"fgdd.report: error: {error}", file=sys.stderr)
        return 2
    rows = [load_row(run) for run in find_runs(args.folder)]
    if not rows:
        print(f"fgdd.report: error: no fgdd run folders under {args.folder}", file=sys.stderr)
        return 2
    for weight in (args.lrs_weight, args.ars_weight):
        if not 0.0 <= weight <= 1.0:
            print(f"fgdd.report: error: --lrs-weight and --ars-weight are in [0, 1], got {weight}", file=sys.stderr)
            return 2
    grids = find_grids(args.folder)
    cells = aggregate(rows, args.metric, published)
    rows = annotate(rows)
    show_controls = holds_controls(rows) if args.controls is None else args.controls
    entries = compute_scores(rows, args.metric, args.lrs_weight, args.ars_weight, given) if show_controls else []
    scores = scores_markdown(entries, missing_controls(entries, args.folder.resolve(), grids), args.metric,
                             args.lrs_weight, args.ars_weight) if entries else ""
    if not args.no_runs:
        Console(width=240).print(runs_table(rows, f"fgdd runs under {args.folder}"))
    markdown = report_markdown(args.folder, rows, cells, grids, args.metric, args.published, scores)
    print(markdown, end="")
    if args.csv:
        write_atomically(args.csv, summary_csv(cells))
    if args.markdown:
        write_atomically(args.markdown, markdown)
    figures = draw(args.folder, rows, cells, entries, args.metric, args.figures) if args.figures else {}
    print(where(rows, args.figures, figures))
    return 0


def _shown(path: Path) -> str:
    # relative to the current folder when under it: the line stays short and can be pasted into a shell here
    path = path.resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def where(rows: list[dict[str, Any]], figures_dir: Path | None, figures: dict[str, Path]) -> str:
    """One line: the folder holding every run folder (each with its own figures/), and the report's figures."""
    runs = [str(Path(row["run"]).resolve()) for row in rows]
    line = f"Run folders: {_shown(Path(os.path.commonpath(runs)))}{'/*' if len(runs) > 1 else ''} (each with " \
           "config.yaml, metrics.json, figures/)"
    if figures_dir is not None:
        drawn = ", ".join(path.name for path in figures.values()) or "none: no finished run to draw"
        line += f"; this report's figures: {_shown(figures_dir)}/ ({drawn})"
    return line + "."


def draw(folder: Path, rows: list[dict[str, Any]], cells: list[dict[str, Any]], entries: list[dict[str, Any]],
         metric: str, out_dir: Path) -> dict[str, Path]:
    from fgdd.report.plots import log_to_wandb, wandb_target, write_figures

    figures = write_figures(rows, cells, entries, metric, out_dir)
    wandb = wandb_target(rows)
    if wandb is not None and figures:  # the runs logged to W&B: the report's figures go beside them
        # runs of a sweep share its name (= its folder's) as their W&B group unless the logger config names one
        log_to_wandb(figures, wandb, name=f"report-{folder.resolve().name}",
                     group=wandb.get("group") or folder.resolve().name)
    return figures


if __name__ == "__main__":
    sys.exit(main())
