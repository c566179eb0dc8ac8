"""The student's input without augmentation (``evaluator.augment=false``): each distilled image resized to the input
size and normalised, nothing drawn. DD-Ranking's augmentation-robust score (ARS) compares students trained with
and without the evaluation's augmentation; this is the "without" side.

It offers the same four entry points as ``StudentTrainTransform`` (``draw``, ``apply``, ``apply_batch``,
``__call__``), so the loaders and the device path use it unchanged; ``draw`` draws nothing, so the generator a
sample is given is left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import functional as TF

from fgdd.utils.normalise import channel_stats


class PlainTrainTransform:
    def __init__(self, input_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.input_size = input_size
        self.mean = list(mean)
        self.std = list(std)

    def draw(self, height: int, width: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {}  # nothing random: every epoch sees the same pixels

    def apply(self, image: Tensor, params: dict[str, Tensor]) -> Tensor:
        x = image.float().div(255)  # (c, h, w) uint8 -> [0, 1]
        if tuple(x.shape[1:]) != (self.input_size, self.input_size):
            x = TF.resize(x, [self.input_size, self.input_size], antialias=True)
        return TF.normalize(x, self.mean, self.std)  # (c, input_size, input_size)

    def apply_batch(self, pixels: Tensor, index: Tensor, params: dict[str, Tensor]) -> Tensor:
        # pixels (N, c, h, w) uint8 where the batch is wanted, index (n,) -> (n, c, input, input) normalised
        x = pixels[index.to(pixels.device)].float().div(255)
        if tuple(x.shape[2:]) != (self.input_size, self.input_size):
            x = TF.resize(x, [self.input_size, self.input_size], antialias=True)
        mean, std = channel_stats(self.mean, self.std, x.device, x.dtype)
        return x.sub_(mean).div_(std)

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(image, self.draw(image.shape[1], image.shape[2], generator))


class PlainBatchAugment(PlainTrainTransform):
    """``evaluator.augment=false`` in the batched pipeline: the ``BatchAugment`` interface, nothing drawn."""

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> dict[str, Tensor]:  # type: ignore[override]
        return {}
