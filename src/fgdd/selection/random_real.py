"""Baseline: ipc random real images per class, each resized to the full input (no mosaic, no teacher)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fgdd.data.spec import DatasetSpec
from fgdd.data.transforms import check_aspect, square_box
from fgdd.selection.base import ImageNeed, ImageSource, Selection, TolerantLoader, require_enough
from fgdd.selection.candidates import crop_to_patch, draw_images
from fgdd.selection.distilled_set import Patch


class RandomRealSelector:
    factor = 1

    def __init__(self, name: str = "random_real", max_bad_fraction: float = 0.01, aspect: str = "crop") -> None:
        self.name = name
        self.max_bad_fraction = max_bad_fraction
        self.aspect = check_aspect(aspect)  # how a non-square image becomes the square input (square_box)

    def images_needed(self, ipc: int) -> ImageNeed:
        return ImageNeed(images=ipc, rule=f"ipc = {ipc} whole images")  # spares are drawn only where a class has them

    def foreground_summary(self) -> dict[str, dict] | None:
        return None

    def select(
        self,
        split: ImageSource,
        observer: nn.Module | None,
        *,
        ipc: int,
        seed: int,
        spec: DatasetSpec,
        device: torch.device,
        dataset: Any = None,
    ) -> Selection:
        load = TolerantLoader(split, self.max_bad_fraction, expected=ipc * len(split.classes))
        selection: Selection = {}
        for label, class_id in enumerate(split.classes):
            # draw a few spares so an unreadable image is replaced, not a short class
            drawn = draw_images(split.indices_of_class(label), ipc + max(2, ipc // 10), seed, label)
            patches = [
                Patch(
                    label=label,
                    source=split.relpath(index),
                    box=square_box(image.size, self.aspect),
                    source_size=image.size,
                    score=None,
                    # PIL's resize of the 8-bit image, as an image loader would give it (no RDED crop to match)
                    pixels=crop_to_patch(image, square_box(image.size, self.aspect), spec.input_size,
                                          crop_from="pil"),
                    path="resize",
                )
                for index, image in load(drawn)
            ][:ipc]
            require_enough(class_id, len(patches), self.images_needed(ipc).images, f"ipc={ipc}")
            selection[label] = patches
        return selection
