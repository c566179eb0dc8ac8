"""What every selector shares: the selector interface, what it needs of the data, and tolerant image loading."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn

from fgdd.data.spec import DatasetSpec
from fgdd.errors import CorruptImageError, FgddError
from fgdd.selection.distilled_set import Patch

log = logging.getLogger(__name__)

Selection = dict[int, list[Patch]]  # label -> the class's patches, ranked best first


class ImageSource(Protocol):
    root: Any  # where the split lives (keys caches)
    classes: list[str]
    targets: list[int]

    def load_rgb(self, index: int) -> Image.Image: ...
    def relpath(self, index: int) -> str: ...
    def indices_of_class(self, label: int) -> list[int]: ...


@dataclass(frozen=True)
class ImageNeed:
    """What a selection needs of every class for one ipc, known before any image is read (``fgdd.check`` and the
    run's first check ask it; neither instantiates more than the selector's constructor)."""

    images: int  # readable train images per class
    rule: str  # how ``images`` follows from ipc, for messages: "ipc x factor^2 = 10 x 2^2, one patch per image"
    pool: int | None = None  # at most this many images per class are drawn to choose from; None: every image
    pool_setting: str = "mipc"  # the selector setting that sets ``pool`` (named in the remedy)


class Selector(Protocol):
    name: str
    factor: int

    def images_needed(self, ipc: int) -> ImageNeed: ...

    def foreground_summary(self) -> dict[str, dict] | None: ...

    def select(
        self,
        split: ImageSource,
        observer: nn.Module | None,
        *,
        ipc: int,
        seed: int,
        spec: DatasetSpec,
        device: torch.device,
        dataset: Any = None,  # fgdd.data.ImageDataset, for selectors whose segmenter reads its files
    ) -> Selection: ...


class TolerantLoader:
    """Loads source images, skipping unreadable ones with a warning; more than ``max_bad_fraction`` of the
    ``expected`` images (all a selection will look at) unreadable stops the run, however they cluster."""

    def __init__(self, split: ImageSource, max_bad_fraction: float, expected: int) -> None:
        self.split = split
        self.max_bad_fraction = max_bad_fraction
        self.expected = max(expected, 1)
        self.seen = 0
        self.bad: list[str] = []

    def __call__(self, indices: Sequence[int]) -> Iterator[tuple[int, Image.Image]]:
        for index in indices:
            self.seen += 1
            try:
                image = self.split.load_rgb(index)
            except CorruptImageError as error:
                self.bad.append(self.split.relpath(index))
                log.warning("skipping unreadable image: %s", error)
                if len(self.bad) > self.max_bad_fraction * self.expected:
                    raise FgddError(
                        f"{len(self.bad)} of the {self.expected} images selection looks at could not be read (more "
                        f"than max_bad_fraction={self.max_bad_fraction}); first: {self.bad[:5]}"
                    ) from error
                continue
            yield index, image


def require_enough(class_id: str, available: int, needed: int, what: str) -> None:
    if available < needed:
        raise FgddError(
            f"class {class_id!r} has {available} usable images but {what} needs {needed}; "
            "lower ipc, or use a dataset with more images per class"
        )
