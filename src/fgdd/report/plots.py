"""Sweep figures for ``python -m fgdd.report --figures DIR``: accuracy against IPC per method, the grid's accuracy
per method (a dot per seed, the seeds paired across methods) and DD-Ranking's IOR / HLR per method (the same way);
logged to W&B as well when the runs logged there."""

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


def save_figure(fig: plt.Figure, path: Path) -> Path:
    from fgdd.utils.io import atomic_write_bytes  # imports torch: only when a figure is written

    if fig._suptitle is not None:  # above the panels' own titles, never over them, however many lines it has
        fig._suptitle.set_y(1.0 + 0.2 / fig.get_figheight())
        fig._suptitle.set_verticalalignment("bottom")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _grid(rows: list, columns: list, panel: tuple[float, float]) -> tuple[plt.Figure, dict[tuple, plt.Axes]]:
    """Facets: one subplot per (row key, column key), keyed so; a pair without data is switched off by its caller."""
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(panel[0] * len(columns), panel[1] * len(rows)),
                             squeeze=False)
    return fig, {(r, c): axes[i][j] for i, r in enumerate(rows) for j, c in enumerate(columns)}


def _panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    columns = min(count, 3)
    fig, axes = _grid(list(range(math.ceil(count / columns))), list(range(columns)), PANEL)
    flat = list(axes.values())
    for ax in flat[count:]:
        ax.axis("off")
    return fig, flat[:count]


def _seed_values(rows: list[dict[str, Any]], metric: str) -> dict[tuple, dict[int, float]]:
    """(dataset, student, teacher, ipc, method, evaluator) -> {seed: metric in %} of the finished runs."""
    values: dict[tuple, dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row["status"] == DONE and row.get(metric) is not None:
            key = (row["dataset"], row["student"], row["teacher"], row["ipc"], row["method"], row["evaluator"])
            values[key][row["seed"]] = 100 * float(row[metric])
    return values


def _wrapped(label: str) -> str:
    # "fgdd(saliency, quantile 0.5)" -> two lines, so that labels of a few methods side by side never overlap
    return label.replace("(", "\n(", 1)


def paired_seeds(ax: plt.Axes, labels: list[str], values: list[dict[int, float]], unit: str) -> None:
    """Methods side by side (x), a dot per seed, each seed's dots joined across methods (a paired comparison: the
    seed fixes the draws and the student's initialisation), the mean as a black bar with its value; the y axis
    spans the data only, so that a difference of one point is visible (bars from 0 would flatten it)."""
    seeds = sorted({s for per_seed in values for s in per_seed})
    xs = range(len(labels))
    for k, seed in enumerate(seeds):
        ys = [per_seed.get(seed, math.nan) for per_seed in values]  # nan: that seed did not finish; the line breaks
        ax.plot(xs, ys, marker="o", markersize=5, linewidth=1, alpha=0.8, color=f"C{k % 10}", label=f"seed {seed}")
    for x, per_seed in zip(xs, values):
        if per_seed:
            mean = sum(per_seed.values()) / len(per_seed)
            ax.hlines(mean, x - 0.2, x + 0.2, colors="black", linewidth=2, zorder=4, label="mean over seeds")
            ax.annotate(f"{mean:.1f}", (x + 0.22, mean), va="center", fontsize=7)
    numbers = [v for per_seed in values for v in per_seed.values()]
    low, high = min(numbers), max(numbers)
    pad = max(0.15 * (high - low), 0.75)  # at least 0.75 points each side: one value alone still has an axis
    ax.set_ylim(low - pad, high + pad)
    ax.axhline(0, color="grey", linewidth=0.8)  # shows only where 0 is in range (a score's "no gain")
    ax.set_xlim(-0.5, len(labels) - 0.3)  # room right of the last mean's value
    ax.set_xticks(list(xs), [_wrapped(label) for label in labels], fontsize=7)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _legend(fig: plt.Figure, axes: list[plt.Axes]) -> None:
    # one legend for the figure: the seeds and the mean mean the same in every panel
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    seed = {label: int(label.split()[1]) for label in handles if label.startswith("seed ")}
    order = sorted(handles, key=lambda label: (label in seed, seed.get(label, 0)))  # the mean first, then seeds
    fig.tight_layout()  # the panels first, so that the legend goes below the lowest tick labels, not over them
    fig.legend([handles[label] for label in order], order, loc="upper center", ncol=min(len(order), 6),
               fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))


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
        ipcs = sorted({c["ipc"] for points in methods.values() for c in points})
        ax.set_xticks(ipcs, [str(ipc) for ipc in ipcs])  # the IPCs run, not powers of ten
        ax.minorticks_off()
        ax.set_xlabel("images per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{dataset} / {student}\nteacher {teacher}, {evaluator}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy against IPC (mean, error bar = std over seeds)", fontsize=9)
    return save_figure(fig, path)


def grid_accuracy(rows: list[dict[str, Any]], cells: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """Facets: a row per (dataset, student, teacher, evaluator), a column per IPC; in each, the methods with a dot
    per seed, each seed joined across methods, and the mean (``paired_seeds``)."""
    seeds = _seed_values(rows, metric)
    panels: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # cells in the report's order: baselines first
    for cell in cells:
        if cell["mean"] is not None:
            panels[(cell["dataset"], cell["student"], cell["teacher"], cell["evaluator"], cell["ipc"])].append(cell)
    if not panels:
        return None
    row_keys = sorted({key[:4] for key in panels})
    ipcs = sorted({key[4] for key in panels})
    widest = max(len(members) for members in panels.values())
    fig, axes = _grid(row_keys, ipcs, (max(3.2, 1.15 * widest + 1.2), 3.3))
    for (row_key, ipc), ax in axes.items():
        members = panels.get((*row_key, ipc))
        if not members:
            ax.axis("off")
            continue
        dataset, student, teacher, evaluator = row_key
        values = [seeds[(dataset, student, teacher, ipc, c["method"], evaluator)] for c in members]
        paired_seeds(ax, [c["method"] for c in members], values, f"{metric} (%)")
        ax.set_title(f"{dataset}, IPC {ipc}\nstudent {student}, teacher {teacher}, {evaluator}", fontsize=8)
    _legend(fig, list(axes.values()))
    fig.suptitle(f"{metric} per method\na dot per seed, lines join the same seed, black = mean", fontsize=9)
    return save_figure(fig, path)


def _scores_label(method: str, entry: dict[str, Any]) -> str:
    extra = ", ".join(f"{s} {100 * entry[s]['mean']:.1f} %" for s in ("LRS", "ARS") if entry[s]["mean"] is not None)
    return f"{method}\n{extra}" if extra else method


def ior_hlr(entries: list[dict[str, Any]], path: Path) -> Path | None:
    """Facets: a row per scored group, a column per score (IOR, HLR, in points); in each, the methods with a dot per
    seed, the seeds joined (``paired_seeds``); LRS and ARS (means) under each method's name."""
    panels: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if entry["IOR"]["mean"] is not None or entry["HLR"]["mean"] is not None:
            panels[(entry["dataset"], entry["student"], entry["ipc"], entry["epochs"])].append(entry)
    if not panels:
        return None
    groups = sorted(panels, key=str)
    scores = ("IOR", "HLR")
    widest = max(len(members) for members in panels.values())
    fig, axes = _grid(groups, list(scores), (max(3.2, 1.3 * widest + 1.2), 3.5))
    for (group, score), ax in axes.items():
        members = [e for e in panels[group] if e[score]["mean"] is not None]
        if not members:
            ax.axis("off")
            continue
        values = [{s: 100 * v for s, v in e[score]["per_seed"].items()} for e in members]
        paired_seeds(ax, [_scores_label(e["method"], e) for e in members], values, f"{score} (points)")
        ax.set_title(f"{score}: {group[0]} / {group[1]} / IPC {group[2]} / {group[3]} epochs", fontsize=8)
    _legend(fig, list(axes.values()))
    fig.suptitle("DD-Ranking: improvement over random (IOR) and hard-label recovery (HLR)\n"
                 "a dot per seed, lines join the same seed, black = mean", fontsize=9)
    return save_figure(fig, path)


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
