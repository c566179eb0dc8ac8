"""The table of one dataset of the CPU grid (benchmarks/cpu_grid.sh), in Markdown on standard output.

Usage: python benchmarks/cpu_grid_table.py GRID/<dataset> [--seeds 0 1 2] [--score test|holdout]

GRID/<dataset>/<cell>/seed<S>/ are run folders (fgdd.run). Per cell: the student's final top-1 per seed, mean +- std
over the finished seeds, for fgdd cells the difference to rded on each seed where both finished, RDED's best-of-tail
number (a max over the test set, labelled), and times per seed (distillation, student training). Unfinished cells
show "-", failed ones "failed", ones stopped by a signal (SIGTERM, Ctrl-C: a grid stopped, a session ended)
"stopped". The protocol lines come from the runs' own config.yaml / metrics.json / run.json,
so a reduced run (fewer epochs, smaller mipc) says so in its table.

``--score holdout`` reads runs made with ``evaluator=holdout`` (``SCORE=holdout benchmarks/cpu_grid.sh``): the same
students scored on a held-out part of the training split, the number a setting such as the threshold is chosen by
(the table then names the fgdd cell with the highest mean), never a test accuracy.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from fgdd.report.collect import DONE, FAILED, read_status, stopped_by_a_signal
from fgdd.run_folder import DISTILLED, DISTILLED_MANIFEST

STOPPED = "stopped"  # a failed.json that records a signal (fgdd.report.collect.stopped_by_a_signal)

WHOLE_PHOTO_PATH = "resize"  # a manifest patch's path where fgdd kept the whole photo (else "crop", RDED's)

# the grid's cells in the order the table lists them; others (added by hand) follow, sorted
ORDER = ["random_real", "rded", "fgdd-saliency-q0.5", "fgdd-saliency-q0.3", "fgdd-saliency-q0.7",
         "fgdd-saliency-always", "fgdd-cam-q0.5", "fgdd-cam-q0.7"]
LABELS = {
    "random_real": "random_real",
    "rded": "rded",
    "fgdd-saliency-q0.5": "fgdd (saliency, per-class 0.5-quantile, the default)",
    "fgdd-saliency-q0.3": "fgdd (saliency, q = 0.3)",
    "fgdd-saliency-q0.7": "fgdd (saliency, q = 0.7, the default before the holdout choice)",
    "fgdd-saliency-always": "fgdd (saliency, always: every drawn image resized)",
    "fgdd-cam-q0.5": "fgdd (cam, q = 0.5)",
    "fgdd-cam-q0.7": "fgdd (cam, q = 0.7)",
}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.1f} (1 seed)"
    return f"{100 * statistics.mean(values):.1f} +- {100 * statistics.stdev(values):.1f}"


def seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}"


def cells_of(folder: Path) -> list[str]:
    found = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return [c for c in ORDER if c in found] + sorted(c for c in found if c not in ORDER)


def seeds_on_disk(folder: Path) -> set[int]:
    """The seeds of every cell's ``seed<N>`` run folder (not a folder set aside, e.g. ``seed1.aside-...``)."""
    return {int(m.group(1)) for cell in cells_of(folder) for p in (folder / cell).iterdir()
            if (m := re.fullmatch(r"seed(\d+)", p.name)) and p.is_dir()}


def table(folder: Path, seeds: list[int], score: str = "test", published: Path | None = None) -> str:
    """``seeds``: the columns at least; every seed with a run folder on disk is shown too, so a grid invoked for
    some seeds (SEEDS="1 2") still writes the seeds an earlier invocation finished."""
    seeds = sorted(set(seeds) | seeds_on_disk(folder))
    prefix = "student" if score == "test" else "holdout"  # holdout: evaluator=holdout's renamed accuracies
    runs: dict[tuple[str, int], tuple[str, dict[str, Any] | None]] = {}
    configs: list[dict[str, Any]] = []
    shas: set[str] = set()
    for cell in cells_of(folder):
        for seed in seeds:
            run_dir = folder / cell / f"seed{seed}"
            if not (run_dir / "config.yaml").exists():
                continue
            status, metrics, failure = read_status(run_dir)
            if status == FAILED and stopped_by_a_signal(failure or {}):
                status = STOPPED
            runs[cell, seed] = (status, metrics)
            if status == DONE:
                configs.append(yaml.safe_load((run_dir / "config.yaml").read_text()))
                record = yaml.safe_load((run_dir / "run.json").read_text())
                for attempt in [record, *record.get("resumes", [])]:  # the commit that began it and every resume's
                    shas.add(str(attempt.get("git", {}).get("sha", "unknown"))[:7])

    def final(cell: str, seed: int) -> float | None:
        status, metrics = runs.get((cell, seed), (None, None))
        return metrics[f"{prefix}/top1_final"] if status == DONE else None

    def shown(cell: str, seed: int) -> str:
        status = runs.get((cell, seed), (None, None))[0]
        return {FAILED: "failed", STOPPED: "stopped"}.get(status) or pct(final(cell, seed))

    def metric(cell: str, seed: int, key: str) -> Any:
        status, metrics = runs.get((cell, seed), (None, None))
        return metrics.get(key) if status == DONE else None

    seed_list = " / ".join(str(s) for s in seeds)
    accuracy = "top-1" if score == "test" else "HOLDOUT top-1 (training split)"
    rded_test = any(metric(c, s, f"{prefix}/top1_final_rded_test") is not None for c, s in runs)
    if rded_test:  # the 128 px regime: the same students on RDED's test set (first 50 val images a class)
        accuracy = "full-val top-1"
    lines = [
        f"| method | {accuracy} final (%), seed {seed_list} | mean +- std | fgdd - rded (points), seed {seed_list} | "
        f"mean fgdd - rded | best of tail (RDED-style, %), mean | distill s, seed {seed_list} | "
        f"student s, seed {seed_list} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells_of(folder):
        finals = [final(cell, s) for s in seeds]
        done = [v for v in finals if v is not None]
        per_seed, mean_diff = minus_rded(cell, finals, [final("rded", s) for s in seeds])
        tails = [v for v in (metric(cell, s, f"{prefix}/top1_best_tail") for s in seeds) if v is not None]
        lines.append(
            f"| {LABELS.get(cell, cell)} | {' / '.join(shown(cell, s) for s in seeds)} | {spread(done)} | {per_seed} | "
            f"{mean_diff} | {spread(tails)} | {' / '.join(seconds(metric(cell, s, 'cost/distill_s')) for s in seeds)} | "
            f"{' / '.join(seconds(metric(cell, s, 'time/student_s')) for s in seeds)} |"
        )
    if rded_test:
        lines += ["", rded_test_table(cells_of(folder), seeds, lambda c, s: metric(c, s, f"{prefix}/top1_final_rded_test"),
                                      published_rded(configs, published))]
    def share(cell: str, seed: int) -> float | None:  # of a finished run only, as every other column
        return whole_photo_share(folder / cell / f"seed{seed}") if final(cell, seed) is not None else None

    whole = [whole_photo_line(LABELS.get(c, c), [share(c, s) for s in seeds], seed_list)
             for c in cells_of(folder) if c.startswith("fgdd")]
    lines += ["", *whole] if whole else []
    if score == "holdout":
        lines += ["", chosen_line([c for c in cells_of(folder) if c.startswith("fgdd")], final, seeds)]
    return "\n".join(protocol(configs, runs, shas) + [""] + lines) + "\n"


def whole_photo_share(run_dir: Path) -> float | None:
    """The fraction of a run's patches that are whole photos (its distilled set's manifest), None without one."""
    manifest = run_dir / DISTILLED / DISTILLED_MANIFEST
    if not manifest.exists():
        return None
    paths = [json.loads(line).get("path") for line in manifest.read_text().splitlines() if line.strip()]
    return sum(path == WHOLE_PHOTO_PATH for path in paths) / len(paths) if paths else None


def whole_photo_line(label: str, shares: list[float | None], seed_list: str) -> str:
    shown = " / ".join("-" if share is None else f"{100 * share:.0f}" for share in shares)
    return f"- {label}: whole photos in {shown} % of the cells (seed {seed_list}; the rest are RDED's best crops)"


def minus_rded(cell: str, values: list[float | None], rded: list[float | None]) -> tuple[str, str]:
    """An fgdd cell's difference to rded (points) per seed where both finished, and its mean; empty for other cells."""
    if not cell.startswith("fgdd"):
        return "", ""
    diffs = [None if v is None or r is None else 100 * (v - r) for v, r in zip(values, rded)]
    paired = [d for d in diffs if d is not None]
    per_seed = " / ".join("-" if d is None else f"{d:+.1f}" for d in diffs)
    return per_seed, f"{statistics.mean(paired):+.1f}" if paired else "-"


def published_rded(configs: list[dict[str, Any]], published: Path | None) -> str:
    """RDED's published top-1 for the grid's dataset, student and ipc (experiments/rded_table2/published.csv);
    none for a student trained on another architecture's sets: RDED's Table 2 selects and labels with an observer
    of the student's own architecture (a ResNet-18 at 224 px for ResNet-18 on the ImageNet subsets)."""
    if published is None or not configs:
        return "-"
    from fgdd.report.published import load_published, lookup

    c = configs[0]
    observer = (c.get("teacher", {}).get("arch") or {}).get("name")
    if observer and observer != c["model"]["name"]:
        return f"- (RDED's {c['model']['name']} number uses a {c['model']['name']} observer, not {observer})"
    row = lookup(load_published(published), {"dataset": c["dataset"]["name"], "student": c["model"]["name"],
                                             "ipc": int(c["ipc"]), "method": "rded", "selector": "rded",
                                             "evaluator": "soft-label"})
    return "-" if row is None or row.top1 is None else f"{100 * row.top1:.1f}"


def rded_test_table(cells: list[str], seeds: list[int], final: Any, rded_published: str) -> str:
    """The same final students scored on RDED's test set (the first 50 val images of each class, by file name),
    the set RDED's own numbers are measured on, with RDED's published number beside the rded row."""
    seed_list = " / ".join(str(s) for s in seeds)
    lines = [f"| method | RDED's test set top-1 (%), seed {seed_list} | mean +- std | fgdd - rded (points), seed "
             f"{seed_list} | mean fgdd - rded | RDED published (%) |", "|---|---|---|---|---|---|"]
    for cell in cells:
        values = [final(cell, s) for s in seeds]
        done = [v for v in values if v is not None]
        per_seed, mean_diff = minus_rded(cell, values, [final("rded", s) for s in seeds])
        lines.append(f"| {LABELS.get(cell, cell)} | {' / '.join(pct(v) for v in values)} | {spread(done)} | "
                     f"{per_seed} | {mean_diff} | {rded_published if cell == 'rded' else ''} |")
    return "\n".join(lines)


def chosen_line(cells: list[str], final: Any, seeds: list[int]) -> str:
    """Which fgdd cell the holdout chooses: the highest mean over the seeds where every fgdd cell finished."""
    common = [s for s in seeds if all(final(c, s) is not None for c in cells)]
    if not cells or not common:
        return "Chosen by the holdout: not yet (no seed where every fgdd cell finished)."
    means = {c: statistics.mean(final(c, s) for s in common) for c in cells}
    best = max(cells, key=lambda c: (means[c], -cells.index(c)))
    ranked = ", ".join(f"{LABELS.get(c, c)} {100 * means[c]:.2f}" for c in sorted(cells, key=lambda c: -means[c]))
    return (f"Chosen by the holdout (mean over seed(s) {', '.join(map(str, common))}): **{LABELS.get(best, best)}**; "
            f"ranking: {ranked}.")


def protocol(configs: list[dict[str, Any]], runs: dict, shas: set[str]) -> list[str]:
    """What the finished runs were: read from their configs, so a reduced smoke run cannot pass for the grid."""
    if not configs:
        return ["No cell has finished yet."]

    def values(get) -> str:  # over the runs that have the setting (random_real has no mipc nor crops)
        return ", ".join(sorted({str(v) for v in map(get, configs) if v is not None}))

    teacher_top1 = sorted({f"{100 * m['teacher/val_top1']:.1f}" for status, m in runs.values() if status == DONE})
    teacher = values(lambda c: Path(str(c["teacher"]["checkpoint"])).name if c["teacher"].get("checkpoint")
                     else f"trained by fgdd ({c['teacher']['recipe']['epochs']} epochs)")
    finished = sum(status == DONE for status, _ in runs.values())
    precisions = sorted({"bf16" if m.get("student/bf16") else "fp32" for status, m in runs.values() if status == DONE})
    return [
        f"- protocol: {values(lambda c: c['dataset']['name'])} at {values(lambda c: c['dataset']['input_size'])} px "
        f"(data {values(lambda c: c['dataset'].get('subdir'))}, aspect {values(lambda c: c['dataset'].get('aspect'))}), "
        f"factor {values(lambda c: c['dataset']['factor'])}, student {values(lambda c: c['model']['name'])}, "
        f"IPC {values(lambda c: c['ipc'])}, {values(lambda c: c['evaluator']['epochs'])} student epochs, "
        f"mipc {values(lambda c: c['selector'].get('mipc'))} and crop ratio "
        f"{values(lambda c: c['selector'].get('crop_ratio'))} (rded, fgdd)",
        f"- teacher: {teacher}, val top-1 {', '.join(teacher_top1)} %; student forward passes in "
        f"{', '.join(precisions)} (student/bf16)",
        f"- cells finished: {finished} of {len(runs)} started; code: commit {', '.join(sorted(shas))}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="GRID/<dataset>")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--score", choices=["test", "holdout"], default="test",
                        help="holdout: runs made with evaluator=holdout (SCORE=holdout benchmarks/cpu_grid.sh)")
    parser.add_argument("--published", type=Path, default=None,
                        help="CSV of published numbers (experiments/rded_table2/published.csv): RDED's beside rded")
    args = parser.parse_args(argv)
    sys.stdout.write(table(args.folder, args.seeds, args.score, args.published))
    return 0


if __name__ == "__main__":
    sys.exit(main())
