"""Per-run figures: occupancy per class with its threshold, and the distilled images with each cell's path."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from fgdd.report.plots import save_figure  # noqa: E402
from fgdd.run_folder import DISTILLED_MANIFEST, DISTILLED_META  # noqa: E402
from fgdd.utils.seeding import derive_seed  # noqa: E402

PATH_COLOURS = {"crop": "#1f77b4", "resize": "#ff7f0e"}
PATH_LEGEND = "distilled images (blue: crop, orange: whole image resized)"


def occupancy_figure(summary: dict[str, dict], path: Path) -> Path:
    """``summary``: class -> {"occupancy": [values of the images looked at], "threshold": float | None}."""
    classes = list(summary)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(classes)), 4.0))
    values = [summary[c]["occupancy"] or [math.nan] for c in classes]
    ax.boxplot(values, showfliers=False, widths=0.6)
    for k, class_values in enumerate(values, start=1):  # the points themselves, jittered
        xs = [k + 0.25 * ((i * 0.618) % 1 - 0.5) for i in range(len(class_values))]
        ax.scatter(xs, class_values, s=4, alpha=0.35, color="grey")
        threshold = summary[classes[k - 1]]["threshold"]
        if threshold is not None and math.isfinite(threshold):
            ax.hlines(threshold, k - 0.4, k + 0.4, colors="red", linewidth=2, label="class threshold" if k == 1 else None)
    ax.set_xticks(range(1, len(classes) + 1), classes, rotation=45, ha="right")
    ax.set_ylabel("foreground occupancy")
    ax.set_ylim(0, 1)
    ax.set_title("occupancy per class (images looked at) and the patch-decision threshold")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    return save_figure(fig, path)


def read_distilled(distilled_dir: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """A distilled set's description (distilled.json) and its manifest records grouped by image file."""
    meta = json.loads((distilled_dir / DISTILLED_META).read_text())
    cells_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (distilled_dir / DISTILLED_MANIFEST).read_text().splitlines():
        record = json.loads(line)
        cells_of[record["file"]].append(record)
    return meta, cells_of


def draw_distilled_image(ax: plt.Axes, image_path: Path, cells: Sequence[dict[str, Any]], factor: int) -> None:
    """One distilled image on ``ax``, each of its cells outlined in its path's colour (PATH_COLOURS)."""
    ax.axis("off")
    with Image.open(image_path) as image:
        ax.imshow(image.convert("RGB"))
        size = image.size[0]
    for record in cells:
        span = size if record["layout"] == "full" else size / factor
        r, c = record["cell"]
        ax.add_patch(Rectangle((c * span, r * span), span - 1, span - 1, fill=False, linewidth=1.5,
                               edgecolor=PATH_COLOURS.get(record["path"], "black")))


def class_files(cells_of: dict[str, list[dict[str, Any]]], class_id: str) -> list[str]:
    """The distilled image files of one class, in name order."""
    return sorted(file for file, cells in cells_of.items() if cells[0]["class"] == class_id)


def distilled_grid_figure(distilled_dir: Path, path: Path, max_per_class: int = 10) -> Path:
    """Rows = classes, columns = distilled images; each cell outlined by the path its patch took."""
    meta, cells_of = read_distilled(distilled_dir)
    classes = meta["classes"]
    columns = min(meta["ipc"], max_per_class)
    fig, axes = plt.subplots(len(classes), columns, figsize=(1.2 * columns, 1.2 * len(classes)), squeeze=False)
    for row, class_id in enumerate(classes):
        files = class_files(cells_of, class_id)[:columns]
        for col in range(columns):
            axes[row][col].axis("off")
            if col < len(files):
                draw_distilled_image(axes[row][col], distilled_dir / files[col], cells_of[files[col]], meta["factor"])
        axes[row][0].set_title(class_id, fontsize=7, loc="left")
    fig.suptitle(PATH_LEGEND, fontsize=9)
    return save_figure(fig, path)


@dataclass
class ForegroundSample:
    """One training image of the distilled set as the segmenter saw it, for ``foreground_samples_figure``."""

    class_id: str
    class_name: str  # what a text-prompted segmenter was given (the dataset's class name)
    source: str
    image: Image.Image
    mask: np.ndarray  # bool (H, W), the segmenter's foreground, at the image's size
    occupancy: float | None  # the value the selection used (manifest)
    threshold: float | None  # the class's threshold (manifest; None = infinite, never/always)
    path: str  # "crop" or "resize"
    box: tuple[int, int, int, int]  # top, left, height, width of the kept patch in the image


def pick_samples(records: Sequence[dict[str, Any]], per_class: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``per_class`` manifest records of one class, seeded, both paths shown where the class took both
    (half resize, half crop, the rest from whichever path has more), in rank order."""
    rng = random.Random(derive_seed(seed, "foreground-samples", records[0]["class"] if records else ""))
    by_path = {path: rng.sample(group, len(group)) for path in ("resize", "crop")
               for group in [[r for r in records if r["path"] == path]]}
    take_resize = min(len(by_path["resize"]), max(per_class // 2, per_class - len(by_path["crop"])))
    chosen = by_path["resize"][:take_resize] + by_path["crop"][: per_class - take_resize]
    return sorted(chosen, key=lambda r: r["rank"])


def foreground_samples(
    distilled_dir: Path,
    split: Any,  # fgdd.selection.base.ImageSource: the training split the set was selected from
    segmenter: Any,  # a fgdd.foreground.base.Segmenter, already set up
    class_names: Sequence[str],
    per_class: int = 4,
    max_classes: int = 10,
) -> list[ForegroundSample]:
    """A seeded sample of each class's kept patches (the first ``max_classes`` classes), segmented again.

    Masks are not stored by a run (only occupancies, cached across runs), so the few images drawn here are
    segmented once more with the run's own segmenter: the figure works for a distilled set reused from the
    cache, and its masks are those that gave the manifest's occupancy (segmenters are deterministic).
    """
    records = [json.loads(line) for line in (distilled_dir / "manifest.jsonl").read_text().splitlines()]
    meta = json.loads((distilled_dir / "distilled.json").read_text())
    samples: list[ForegroundSample] = []
    for label, class_id in enumerate(meta["classes"][:max_classes]):
        chosen = pick_samples([r for r in records if r["label"] == label], per_class, int(meta.get("seed", 0)))
        index_of = {split.relpath(i): i for i in split.indices_of_class(label)}
        images = [split.load_rgb(index_of[r["source"]]) for r in chosen]
        if not images:
            continue
        masks = segmenter.masks(images, labels=[label] * len(images), prompts=[class_names[label]] * len(images),
                                sources=[r["source"] for r in chosen])
        samples += [ForegroundSample(class_id, class_names[label], r["source"], image, np.asarray(mask, dtype=bool),
                                     r["occupancy"], r["threshold"], r["path"], tuple(r["box"]))
                    for r, image, mask in zip(chosen, images, masks)]
    return samples


def foreground_samples_figure(samples: Sequence[ForegroundSample], path: Path) -> Path:
    """Rows = classes, columns = sampled images: the photo with its background dimmed and the mask outlined, the
    kept patch's box in its path's colour, and occupancy / class threshold / path above each."""
    classes = list(dict.fromkeys(s.class_id for s in samples))
    columns = max([sum(s.class_id == c for s in samples) for c in classes] or [1])
    rows = max(len(classes), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows + 0.6), squeeze=False,
                             layout="constrained")  # room for every title, whatever the class names
    for ax in axes.flat:
        ax.axis("off")
    for row, class_id in enumerate(classes):
        for col, sample in enumerate(s for s in samples if s.class_id == class_id):
            ax = axes[row][col]
            pixels = np.asarray(sample.image.convert("RGB"), dtype=np.float32) / 255  # (h, w, 3)
            # the background dimmed and the mask outlined: readable whatever the colours of the photo
            ax.imshow(np.where(sample.mask[..., None], pixels, 0.3 * pixels))
            if sample.mask.any() and not sample.mask.all():
                ax.contour(sample.mask.astype(np.float32), levels=[0.5], colors="red", linewidths=1.2)
            top, left, height, width = sample.box
            colour = PATH_COLOURS.get(sample.path, "black")
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, linewidth=2, edgecolor=colour))
            occupancy = "n/a" if sample.occupancy is None else f"{sample.occupancy:.2f}"
            threshold = "n/a" if sample.threshold is None else f"{sample.threshold:.2f}"
            ax.set_title(f"{sample.class_name}\nocc {occupancy} / thr {threshold}, {sample.path}", fontsize=7,
                         color=colour)
    fig.suptitle("what the segmenter saw: foreground outlined in red, background dimmed\n"
                 "box of the kept patch (blue: crop, orange: whole image resized)", fontsize=9)
    return save_figure(fig, path)
