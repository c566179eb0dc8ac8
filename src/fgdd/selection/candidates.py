"""Candidate crops: which source images a class looks at, and RandomResizedCrop boxes on each."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from fgdd.utils.seeding import derive_seed, generator

Box = tuple[int, int, int, int]  # top, left, height, width in source pixels


def draw_images(indices: Sequence[int], mipc: int, seed: int, label: int) -> list[int]:
    """RDED's ``mipc`` random images of one class, seeded by run seed and class, in drawn order."""
    order = torch.randperm(len(indices), generator=generator(seed, "mipc", label))
    return [indices[int(i)] for i in order[: min(mipc, len(indices))]]


def crop_boxes(
    image_size: tuple[int, int],
    num: int,
    seed: int,
    source: str,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> list[Box]:
    """``num`` RandomResizedCrop boxes for one image (torchvision's sampler, seeded per run seed and image).

    Seeding by the image's path (not its position in a batch) keeps the boxes of an image the same whatever
    else is selected, so two selectors that look at the same image see the same candidates.
    """
    width, height = image_size
    probe = Image.new("L", (width, height))  # get_params only reads the size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "crops", source))
        return [tuple(RandomResizedCrop.get_params(probe, list(scale), list(ratio))) for _ in range(num)]


def crop_to_patch(image: Image.Image, box: Box, patch_size: int) -> torch.Tensor:
    """(3, patch_size, patch_size) float in [0, 1]: the box resized (bilinear, antialiased) to a square patch."""
    top, left, height, width = box
    patch = TF.resized_crop(image, top, left, height, width, [patch_size, patch_size], antialias=True)
    return TF.to_tensor(patch)


def whole_image_box(image: Image.Image) -> Box:
    width, height = image.size
    return (0, 0, height, width)
