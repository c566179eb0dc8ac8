"""Sweep figures for ``python -m fgdd.report --figures DIR``: accuracy against IPC per method, the grid's accuracy
per method and evaluator, and DD-Ranking's IOR / HLR per method, each with its spread over seeds; logged to W&B
as well when the runs logged there."""

from __future__ import annotations

import io
import logging
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402

from fgdd.report.collect import DONE  # noqa: E402

log = logging.getLogger(__name__)
PANEL = (4.6, 3.4)  # inches per subplot


def _save(fig: plt.Figure, path: Path) -> Path:
    from fgdd.utils.io import atomic_write_bytes  # imports torch: only when a figure is written

    if fig._suptitle is not None:  # above the panels' own titles, never over them
        fig._suptitle.set_y(1.0 + 0.35 / fig.get_figheight())
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PANEL[0] * columns, PANEL[1] * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[count:]:
        ax.axis("off")
    return fig, flat[:count]


def _seed_values(rows: list[dict[str, Any]], metric: str) -> dict[tuple, list[float]]:
    values: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row["status"] == DONE and row.get(metric) is not None:
            key = (row["dataset"], row["student"], row["teacher"], row["ipc"], row["method"], row["evaluator"])
            values[key].append(100 * float(row[metric]))
    return values


def accuracy_vs_ipc(cells: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """One panel per (dataset, student, teacher, evaluator): mean accuracy against IPC, one line per method, error
    bars = std over seeds. None when no panel has two IPCs (a line needs two points)."""
    panels: dict[tuple, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        if cell["mean"] is not None:
            key = (cell["dataset"], cell["student"], cell["teacher"], cell["evaluator"])
            panels[key][cell["method"]].append(cell)
    panels = {k: v for k, v in panels.items() if len({c["ipc"] for m in v.values() for c in m}) > 1}
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, ((dataset, student, teacher, evaluator), methods) in zip(axes, sorted(panels.items())):
        for method, points in methods.items():
            points = sorted(points, key=lambda c: c["ipc"])
            ax.errorbar([c["ipc"] for c in points], [100 * c["mean"] for c in points],
                        yerr=[100 * c["std"] for c in points], marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("images per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{dataset} / {student}\nteacher {teacher}, {evaluator}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy against IPC (mean, error bar = std over seeds)", fontsize=9)
    return _save(fig, path)


def grid_accuracy(rows: list[dict[str, Any]], cells: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """One panel per (dataset, student, teacher, IPC): a bar per (method, evaluator) at the mean, error bar = std,
    a dot per seed."""
    seeds = _seed_values(rows, metric)
    panels: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        if cell["mean"] is not None:
            panels[(cell["dataset"], cell["student"], cell["teacher"], cell["ipc"])].append(cell)
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (key, members) in zip(axes, sorted(panels.items())):
        methods = list(dict.fromkeys(c["method"] for c in members))
        evaluators = list(dict.fromkeys(c["evaluator"] for c in members))
        width = 0.8 / len(evaluators)
        labelled: set[str] = set()
        for j, evaluator in enumerate(evaluators):
            for i, method in enumerate(methods):
                cell = next((c for c in members if c["method"] == method and c["evaluator"] == evaluator), None)
                if cell is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ax.bar(x, 100 * cell["mean"], width, yerr=100 * cell["std"], capsize=2, color=f"C{j}",
                       label=None if evaluator in labelled else evaluator)
                labelled.add(evaluator)
                dots = seeds.get((*key[:4], method, evaluator), [])
                ax.scatter([x] * len(dots), dots, s=8, color="black", zorder=3)
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{key[0]} / {key[1]} / IPC {key[3]}\nteacher {key[2]}", fontsize=8)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=1, frameon=False)
    fig.suptitle("accuracy per method and evaluator (bar = mean, error bar = std, dots = seeds)", fontsize=9)
    return _save(fig, path)


def ior_hlr(entries: list[dict[str, Any]], path: Path) -> Path | None:
    """One panel per scored group: IOR and HLR per method (points), error bar = std over seeds; LRS and ARS written
    above the bars."""
    panels: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if entry["IOR"]["mean"] is not None or entry["HLR"]["mean"] is not None:
            panels[(entry["dataset"], entry["student"], entry["ipc"], entry["epochs"])].append(entry)
    if not panels:
        return None
    fig, axes = _panels(len(panels))
    for ax, (key, members) in zip(axes, sorted(panels.items(), key=lambda kv: str(kv[0]))):
        for k, (score, colour) in enumerate((("IOR", "C2"), ("HLR", "C3"))):
            xs = [i - 0.2 + 0.4 * k for i in range(len(members))]
            means = [100 * (e[score]["mean"] or 0.0) for e in members]
            stds = [100 * (e[score]["std"] or 0.0) for e in members]
            ax.bar(xs, means, 0.4, yerr=stds, capsize=3, color=colour, label=f"{score} (points)")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.12 * (high - low))  # room for the LRS / ARS line above the bars
        for i, e in enumerate(members):
            text = "\n".join(f"{s} {100 * e[s]['mean']:.1f} %" for s in ("LRS", "ARS") if e[s]["mean"] is not None)
            if text:
                ax.text(i, high + 0.11 * (high - low), text, ha="center", va="top", fontsize=6)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(members)), [e["method"] for e in members], rotation=20, ha="right", fontsize=7)
        ax.set_title(f"{key[0]} / {key[1]} / IPC {key[2]} / {key[3]} epochs", fontsize=8)
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.12), ncol=2, frameon=False)
    fig.suptitle("DD-Ranking: improvement over random (IOR) and hard-label recovery (HLR), mean +- std over seeds",
                 fontsize=9)
    return _save(fig, path)


def write_figures(rows: list[dict[str, Any]], cells: list[dict[str, Any]], entries: list[dict[str, Any]],
                  metric: str, out_dir: Path) -> dict[str, Path]:
    """The figures there is data for, as ``{name: path}``."""
    made = {
        "accuracy_vs_ipc": accuracy_vs_ipc(cells, metric, out_dir / "accuracy_vs_ipc.png"),
        "grid_accuracy": grid_accuracy(rows, cells, metric, out_dir / "grid_accuracy.png"),
        "ior_hlr": ior_hlr(entries, out_dir / "ior_hlr.png"),
    }
    return {name: path for name, path in made.items() if path is not None}


def wandb_target(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The W&B logger settings of the runs (project, entity), when they logged to W&B; None otherwise."""
    for row in rows:
        logger = row.get("logger_config") or {}
        if str(logger.get("_target_", "")).endswith("WandbLogger"):
            return logger
    return None


def log_to_wandb(figures: dict[str, Path], logger: dict[str, Any], name: str, group: str | None) -> None:
    """The report's figures as one W&B run (job_type "report") beside the sweep's runs; WANDB_MODE is honoured."""
    import wandb

    run = wandb.init(project=logger.get("project"), entity=logger.get("entity"), name=name, group=group,
                     job_type="report", mode=os.environ.get("WANDB_MODE") or logger.get("mode"), reinit=True)
    try:
        run.log({f"report/{key}": wandb.Image(str(path)) for key, path in figures.items()})
    finally:
        run.finish()
