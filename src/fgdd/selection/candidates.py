"""Candidate crops: which source images a class looks at, and RandomResizedCrop boxes on each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from fgdd.utils.boxes import Box, resized_crop_box
from fgdd.utils.seeding import CROPS, SELECT_IMAGES, generator

# How a box becomes patch pixels. "tensor" is RDED's order (ToTensor, then RandomResizedCrop on the float image:
# antialiased bilinear, no rounding); "pil" resizes the 8-bit image with PIL, so every value is rounded to 1/255.
CropFrom = Literal["tensor", "pil"]


def draw_images(indices: Sequence[int], mipc: int, seed: int, label: int) -> list[int]:
    """RDED's ``mipc`` random images of one class, seeded by run seed and class, in drawn order."""
    order = torch.randperm(len(indices), generator=generator(seed, SELECT_IMAGES, label))
    return [indices[int(i)] for i in order[: min(mipc, len(indices))]]


def crop_boxes(
    image_size: tuple[int, int],
    num: int,
    seed: int,
    source: str,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (1.0, 1.0),
) -> list[Box]:
    """``num`` RandomResizedCrop boxes for one image (torchvision's sampler in its own float32 precision, from a
    generator seeded per run seed and image: the boxes RDED's ``MultiRandomCrop`` draws).

    ``ratio`` (width / height) (1, 1) gives square boxes, as RDED's ``MultiRandomCrop``; torchvision's own default
    (3/4, 4/3) draws boxes that the resize to a square patch then stretches.

    Seeding by the image's path (not its position in a batch) keeps the boxes of an image the same whatever
    else is selected, so two selectors that look at the same image see the same candidates.
    """
    width, height = image_size
    draws = generator(seed, CROPS, source)  # the stream torch.manual_seed(derive_seed(...)) gave get_params
    return [resized_crop_box(height, width, scale, ratio, draws, torch.float32) for _ in range(num)]


def crop_to_patch(image: Image.Image, box: Box, patch_size: int, crop_from: CropFrom = "tensor") -> torch.Tensor:
    """(3, patch_size, patch_size) float in [0, 1]: the box resized (bilinear, antialiased) to a square patch."""
    return crop_patches(image, [box], patch_size, crop_from)[0]


def crop_patches(
    image: Image.Image, boxes: Sequence[Box], patch_size: int, crop_from: CropFrom = "tensor"
) -> torch.Tensor:
    """(len(boxes), 3, patch_size, patch_size) float in [0, 1]; the image is converted to a tensor once."""
    if crop_from not in ("tensor", "pil"):
        raise ValueError(f"crop_from must be 'tensor' or 'pil', got {crop_from!r}")
    size = [patch_size, patch_size]
    if crop_from == "pil":
        return torch.stack([TF.to_tensor(TF.resized_crop(image, *box, size, antialias=True)) for box in boxes])
    pixels = TF.to_tensor(image)  # (3, h, w) in [0, 1]
    return torch.stack([TF.resized_crop(pixels, *box, size, antialias=True) for box in boxes])
