"""No foreground anywhere: occupancy 0 for every image, so every image takes the crop path (exactly RDED)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from fgdd.foreground.base import SegmentationContext


class NoForeground:
    def __init__(self, name: str = "none") -> None:
        self.name = name

    def setup(self, context: SegmentationContext) -> None:
        pass

    def cache_key(self) -> dict[str, Any]:
        return {"name": self.name, "method": "none-v1"}

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        return [np.zeros((im.height, im.width), dtype=bool) for im in images]
