"""The dataset's own true foreground: exact masks of the shapes demo set, object boxes of Tiny-ImageNet.

An upper bound for the other segmenters (and the way to test the selector without a segmentation model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from fgdd.data.shapes import ShapesDataset
from fgdd.data.tinyimagenet import Box, TinyImageNetDataset
from fgdd.errors import FgddError
from fgdd.foreground.base import SegmentationContext
from fgdd.foreground.mask_folder import fit_mask

SPLITS = ("train", "val")


def box_mask(box: Box, width: int, height: int) -> np.ndarray:
    """Filled rectangle; the box's corners are inclusive pixel indices (Tiny-ImageNet's files), clipped to the image."""
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[max(y0, 0) : min(y1, height - 1) + 1, max(x0, 0) : min(x1, width - 1) + 1] = True
    return mask


class GroundTruthSegmenter:
    def __init__(self, name: str = "ground_truth") -> None:
        self.name = name
        self._dataset: Any = None
        self._shape_index: dict[str, tuple[str, int]] | None = None  # relpath -> (split, sample index)
        self._boxes: dict[str, Box] | None = None  # relpath -> box

    def setup(self, context: SegmentationContext) -> None:
        dataset = context.dataset
        if not isinstance(dataset, (ShapesDataset, TinyImageNetDataset)):
            raise FgddError(
                f"segmenter=ground_truth: dataset {getattr(dataset, 'name', type(dataset).__name__)} has no "
                "ground-truth foreground (only shapes masks and Tiny-ImageNet boxes do). Use segmenter=cam (the "
                "teacher's class activation map), segmenter=mask_folder (masks you computed) or grounded_sam2"
            )
        self._dataset = dataset
        self._shape_index = None
        self._boxes = None

    def cache_key(self) -> dict[str, Any]:
        if self._dataset is None:
            raise FgddError("GroundTruthSegmenter.cache_key() needs setup(context) first")
        key: dict[str, Any] = {"name": self.name, "method": "ground_truth-v1", "dataset": self._dataset.name}
        if isinstance(self._dataset, ShapesDataset):
            key["data"] = self._dataset.dataset_dir.name  # generator version, sizes and seed
        return key

    def _shape_mask(self, source: str) -> np.ndarray:
        if self._shape_index is None:
            self._shape_index = {}
            for which in SPLITS:
                split = getattr(self._dataset, which)()  # train() or val()
                self._shape_index.update({split.relpath(i): (which, i) for i in range(len(split))})
        if source not in self._shape_index:
            raise FgddError(f"ground_truth: {source} is not an image of dataset {self._dataset.name}")
        which, i = self._shape_index[source]
        return self._dataset.mask(which, i)

    def _box(self, source: str) -> Box:
        if self._boxes is None:
            self._boxes = {}
            for which in SPLITS:
                self._boxes.update(self._dataset.boxes(which))
        if source not in self._boxes:
            raise FgddError(
                f"ground_truth: no box for {source} in dataset {self._dataset.name} "
                "(train/<wnid>/<wnid>_boxes.txt or val/val_annotations.txt)"
            )
        return self._boxes[source]

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        if self._dataset is None:
            raise FgddError("GroundTruthSegmenter.masks() needs setup(context) first")
        if len(sources) != len(images):
            raise FgddError(f"ground_truth: {len(images)} images but {len(sources)} source paths")
        out = []
        for image, source in zip(images, sources):
            if isinstance(self._dataset, ShapesDataset):
                # the stored mask is at the generated size; a caller that resized the image gets it resized too
                out.append(fit_mask(self._shape_mask(source), image.width, image.height, source))
            else:
                out.append(box_mask(self._box(source), image.width, image.height))
        return out
