"""``python -m fgdd.report.mosaics RUN [RUN ...]``: one class's distilled images of several runs side by side, a row
per run (e.g. rded's and fgdd's of the same seed), each mosaic cell outlined by the path its patch took (crop or
whole image resized), so what foreground-aware selection changes is seen, not only measured.

The class is ``--class`` or, by default, the one whose whole-image count differs most between the runs (the first
such class in the dataset's order)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from fgdd.report.collect import method_label
from fgdd.report.figures import PATH_LEGEND, class_files, draw_distilled_image, plt, read_distilled
from fgdd.report.plots import save_figure
from fgdd.run_folder import CONFIG, DISTILLED

PANEL_INCHES = 1.6


class RunSet:
    """A run folder's distilled set and the label of its row (method and seed, from its config)."""

    def __init__(self, run_dir: Path) -> None:
        distilled_dir = run_dir / DISTILLED
        if not (distilled_dir / "distilled.json").exists():
            raise SystemExit(f"{run_dir} holds no finished distilled set ({distilled_dir}/distilled.json missing): "
                             "pass a run folder whose selection stage finished")
        config = yaml.safe_load((run_dir / CONFIG).read_text())
        self.dir = distilled_dir
        self.label = f"{method_label(config['selector'])}, seed {config['seed']}"
        self.meta, self.cells_of = read_distilled(distilled_dir)

    def paths(self, class_id: str) -> list[str]:
        """The path of each of the class's cells (crop or resize), image by image."""
        return [cell["path"] for file in class_files(self.cells_of, class_id) for cell in self.cells_of[file]]

    def whole_images(self, class_id: str) -> int:
        """How many of the class's cells took the whole-image path."""
        return self.paths(class_id).count("resize")


def most_different_class(runs: Sequence[RunSet]) -> str:
    """The class whose whole-image count differs most between the runs (first in the dataset's order on ties)."""
    classes = runs[0].meta["classes"]
    spread = [max(r.whole_images(c) for r in runs) - min(r.whole_images(c) for r in runs) for c in classes]
    return classes[spread.index(max(spread))]


def check_same_classes(runs: Sequence[RunSet]) -> None:
    for run in runs[1:]:
        if run.meta["classes"] != runs[0].meta["classes"]:
            raise SystemExit(f"{run.dir} and {runs[0].dir} are sets of different class lists: compare runs of one "
                             "dataset")


def mosaics_figure(runs: Sequence[RunSet], class_id: str, path: Path, max_images: int = 10) -> Path:
    """A row per run: its first ``max_images`` distilled images of ``class_id``, cells outlined by path."""
    files = [class_files(run.cells_of, class_id)[:max_images] for run in runs]
    if not any(files):
        raise SystemExit(f"no distilled image of class {class_id!r} in these runs; classes: "
                         f"{', '.join(runs[0].meta['classes'])}")
    columns = max(len(f) for f in files)
    fig, axes = plt.subplots(len(runs), columns, figsize=(PANEL_INCHES * columns, PANEL_INCHES * len(runs) + 0.4),
                             squeeze=False)
    for row, (run, run_files) in enumerate(zip(runs, files, strict=True)):
        for col in range(columns):
            axes[row][col].axis("off")
            if col < len(run_files):
                draw_distilled_image(axes[row][col], run.dir / run_files[col], run.cells_of[run_files[col]],
                                     run.meta["factor"])
        axes[row][0].set_title(f"{run.label}: {run.whole_images(class_id)} of "
                                f"{len(run.paths(class_id))} cells whole images", fontsize=8, loc="left")
    fig.suptitle(f"class {class_id}: {PATH_LEGEND}", fontsize=9)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fgdd.report.mosaics", description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (each with a finished distilled/ set)")
    parser.add_argument("--class", dest="class_id", help="a class id of the dataset (default: see above)")
    parser.add_argument("--out", type=Path, default=Path("mosaics.png"), help="the PNG written (atomically)")
    parser.add_argument("--max-images", type=int, default=10, help="distilled images per row at most")
    args = parser.parse_args(argv)
    runs = [RunSet(run_dir) for run_dir in args.runs]
    check_same_classes(runs)
    class_id = args.class_id or most_different_class(runs)
    if class_id not in runs[0].meta["classes"]:
        parser.error(f"--class {class_id!r} is not a class of these runs: {', '.join(runs[0].meta['classes'])}")
    print(mosaics_figure(runs, class_id, args.out, args.max_images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
