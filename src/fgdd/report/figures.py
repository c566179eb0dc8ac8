"""Per-run figures: occupancy per class with its threshold, and the distilled images with each cell's path."""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from fgdd.utils.io import atomic_write_bytes  # noqa: E402

PATH_COLOURS = {"crop": "#1f77b4", "resize": "#ff7f0e"}


def _save(fig: plt.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


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
    return _save(fig, path)


def distilled_grid_figure(distilled_dir: Path, path: Path, max_per_class: int = 10) -> Path:
    """Rows = classes, columns = distilled images; each cell outlined by the path its patch took."""
    records = [json.loads(line) for line in (distilled_dir / "manifest.jsonl").read_text().splitlines()]
    meta = json.loads((distilled_dir / "distilled.json").read_text())
    factor = meta["factor"]
    cells_of: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        cells_of[record["file"]].append(record)
    classes = meta["classes"]
    columns = min(meta["ipc"], max_per_class)
    fig, axes = plt.subplots(len(classes), columns, figsize=(1.2 * columns, 1.2 * len(classes)), squeeze=False)
    for row, class_id in enumerate(classes):
        files = sorted({r["file"] for r in records if r["class"] == class_id})[:columns]
        for col in range(columns):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(files):
                continue
            with Image.open(distilled_dir / files[col]) as image:
                ax.imshow(image.convert("RGB"))
                size = image.size[0]
            for record in cells_of[files[col]]:
                span = size if record["layout"] == "full" else size / factor
                r, c = record["cell"]
                ax.add_patch(Rectangle((c * span, r * span), span - 1, span - 1, fill=False, linewidth=1.5,
                                       edgecolor=PATH_COLOURS.get(record["path"], "black")))
        axes[row][0].set_title(class_id, fontsize=7, loc="left")
    fig.suptitle("distilled images (blue: crop, orange: whole image resized)", fontsize=9)
    return _save(fig, path)
