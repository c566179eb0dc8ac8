"""The paper's dynamic patch selection: per image, a foreground that dominates (occupancy >= the class
threshold) keeps the whole image resized; otherwise RDED's best of K random crops."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from fgdd.data.transforms import check_aspect, square_box
from fgdd.errors import ConfigError
from fgdd.foreground.base import SegmentationContext, Segmenter
from fgdd.foreground.occupancy import OccupancyStore, cache_key, measure_occupancy
from fgdd.selection.base import ImageSource
from fgdd.selection.candidates import crop_to_patch
from fgdd.selection.distilled_set import Patch
from fgdd.selection.rded import RDEDSelector, rank_patches
from fgdd.selection.scoring import score_patches
from fgdd.utils.precision import Resolved

log = logging.getLogger(__name__)

ThresholdPolicy = Callable[[Mapping[int, np.ndarray]], dict[int, float]]


class ForegroundAwareSelector(RDEDSelector):
    def __init__(
        self,
        factor: int,
        segmenter: Segmenter,
        threshold: ThresholdPolicy,
        name: str = "fgdd",
        resize_to: Literal["cell", "full"] = "cell",
        compete: bool = True,
        cache_dir: str = ".cache/fgdd",
        segment_batch_size: int | None = None,
        store_masks: bool = False,
        aspect: str = "crop",  # how a non-square whole image becomes a square patch (data/transforms.py square_box)
        **rded: Any,
    ) -> None:
        super().__init__(factor=factor, name=name, **rded)
        if resize_to not in ("cell", "full"):
            raise ConfigError(f"selector.resize_to must be 'cell' or 'full', got {resize_to!r}")
        self.segmenter = segmenter
        self.threshold = threshold
        self.resize_to = resize_to
        self.compete = compete
        self.cache_dir = Path(cache_dir)
        self.segment_batch_size = segment_batch_size
        self.store_masks = store_masks
        self.aspect = check_aspect(aspect)
        self.occupancy: dict[str, float] = {}  # relpath -> occupancy of every drawn image measured
        self.class_threshold: dict[int, float] = {}
        self.summary: dict[str, dict] = {}

    def prepare(self, split: ImageSource, drawn: dict[int, list[int]], observer: nn.Module, device: torch.device,
                dataset: Any) -> None:
        if not getattr(self.threshold, "needs_occupancy", True):
            # never / always: the decision does not depend on the foreground, so nothing is segmented
            self.class_threshold = self.threshold({label: np.empty(0) for label in drawn})
            self.occupancy = {}
            return
        everything = [i for label in sorted(drawn) for i in drawn[label]]
        self.occupancy = self.measure(split, everything, observer, device, dataset)
        per_class = {label: np.array([self.occupancy[split.relpath(i)] for i in drawn[label]
                                      if split.relpath(i) in self.occupancy]) for label in drawn}
        self.class_threshold = self.threshold(per_class)
        self.summary = {split.classes[label]: {"threshold": self.class_threshold[label], "occupancy": values.tolist()}
                        for label, values in per_class.items()}
        for label, values in per_class.items():
            resized = int(np.sum((values > 0) & (values >= self.class_threshold[label])))
            log.info("class %s: threshold %.3f, %d of %d images take the resize path", split.classes[label],
                     self.class_threshold[label], resized, len(values))

    def measure(self, split: ImageSource, indices: list[int], observer: nn.Module, device: torch.device,
                dataset: Any) -> dict[str, float]:
        """Occupancy of ``indices`` (relpath -> value) through the shared cache; also ``python -m fgdd.segment``."""
        if dataset is None:
            raise ConfigError(f"the {self.name} selector needs the dataset (class names, cache key) to segment")
        self.segmenter.setup(SegmentationContext(observer=observer, dataset=dataset, device=device))
        store = OccupancyStore(self.cache_dir, cache_key(dataset.name, dataset.classes, str(split.root), self.segmenter),
                               store_masks=self.store_masks)
        # images loaded per segmenter call (classes mixed); None: the segmenter's own forward batch (cam 256,
        # grounded_sam2 8), so no call is split into a short forward
        batch_size = self.segment_batch_size or int(getattr(self.segmenter, "batch_size", 16))
        return measure_occupancy(self.segmenter, split, indices, dataset.class_names, store, batch_size=batch_size)

    def foreground_summary(self) -> dict[str, dict] | None:
        return self.summary or None

    def takes_resize_path(self, source: str, label: int) -> bool:
        occupancy = self.occupancy.get(source, 0.0)
        if occupancy <= 0.0 and getattr(self.threshold, "needs_occupancy", True):
            return False  # nothing found: never the resize path, even where a class's threshold is 0
        return occupancy >= self.class_threshold[label]

    def class_patches(
        self, images: list[tuple[str, Image.Image]], label: int, observer: nn.Module, *, seed: int, **scoring: Any
    ) -> list[Patch]:
        # the seed draws the crop candidates; a whole image is the same whatever the seed
        decisions = [self.takes_resize_path(source, label) for source, _ in images]
        resize = [item for item, whole in zip(images, decisions) if whole]
        crop = [item for item, whole in zip(images, decisions) if not whole]
        patches = self.best_crops(crop, label, observer, seed=seed, **scoring) if crop else []
        patches += self.whole_images(resize, label, observer, **scoring) if resize else []
        order = {source: k for k, (source, _) in enumerate(images)}  # back to drawn order: ranking ties stay stable
        patches.sort(key=lambda p: order[p.source])
        for patch in patches:
            patch.occupancy = self.occupancy.get(patch.source)
            patch.threshold = self.class_threshold[label]
        return patches

    def whole_images(
        self, images: list[tuple[str, Image.Image]], label: int, observer: nn.Module, *, patch_size: int,
        input_size: int, mean: Any, std: Any, device: torch.device, precision: Resolved = "fp32",
    ) -> list[Patch]:
        """Each whole image resized to one mosaic cell (``cell``) or to the full input (``full``), scored like a crop."""
        size = patch_size if self.resize_to == "cell" else input_size
        boxes = [square_box(img.size, self.aspect) for _, img in images]
        pixels = torch.stack([crop_to_patch(img, box, size, self.crop_from)
                              for (_, img), box in zip(images, boxes)])  # (n, c, s, s), resampled as the crops are
        labels = torch.full((len(images),), label, dtype=torch.long)
        scores = score_patches(observer, pixels, labels, input_size=input_size, mean=mean, std=std, device=device,
                               channels_last=self.channels_last, precision=precision)
        layout = "full" if self.resize_to == "full" and self.factor > 1 else "cell"
        return [
            Patch(label=label, source=source, box=box, source_size=img.size, score=float(score),
                  pixels=patch, path="resize", layout=layout)
            for (source, img), box, patch, score in zip(images, boxes, pixels, scores)
        ]

    def keep(self, patches: list[Patch], ipc: int) -> list[Patch]:
        """Fill ipc * factor^2 cells in rank order; a whole image of layout ``full`` takes factor^2 cells.

        With ``compete`` off, resized images rank ahead of all crops (by score among themselves).
        """
        ranked = rank_patches(patches, len(patches))
        if not self.compete:
            ranked = [p for p in ranked if p.path == "resize"] + [p for p in ranked if p.path != "resize"]
        budget, used, kept = self.cells(ipc), 0, []
        for patch in ranked:
            cost = self.factor**2 if patch.layout == "full" else 1
            if used + cost <= budget:
                kept.append(patch)
                used += cost
            if used == budget:
                break
        return kept
