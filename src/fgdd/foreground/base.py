"""The segmenter interface: a batch of images with their classes in, one foreground mask per image out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from fgdd.data.spec import DatasetSpec
from fgdd.errors import ConfigError


@dataclass(frozen=True)
class SegmentationContext:
    """What a segmenter may need besides the images: the run's observer, dataset and device."""

    observer: nn.Module | None
    dataset: Any  # fgdd.data.ImageDataset: its files (ground-truth masks) and its spec; None where neither is read
    device: torch.device

    @property
    def spec(self) -> DatasetSpec:
        """The dataset's input size, normalisation and class names (what a model-based segmenter feeds the observer)."""
        if self.dataset is None:
            raise ConfigError("this segmenter reads the dataset's input size and normalisation, but no dataset was given")
        return self.dataset.spec


class Segmenter(Protocol):
    name: str

    def setup(self, context: SegmentationContext) -> None:
        """Bind run-time objects (teacher, dataset, device); called once before ``masks``."""

    def cache_key(self) -> dict[str, Any]:
        """Every setting that changes the masks (model ids, thresholds, sizes); keys the occupancy cache."""

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        """One bool (H, W) mask per image, at that image's own size. ``prompts`` are the class names (text),
        ``sources`` the images' paths relative to the dataset root (for segmenters that read stored masks)."""


def occupancy(mask: np.ndarray) -> float:
    """Foreground pixels / image pixels."""
    return float(np.count_nonzero(mask)) / mask.size


def text_prompt(class_name: str) -> str:
    """Grounding DINO's caption for a class: lower case, ending with a dot ("tench.")."""
    return class_name.strip().lower().rstrip(".") + "."
