"""The one RandomResizedCrop box sampler: torchvision's ``RandomResizedCrop.get_params``, drawing from an explicit
``torch.Generator``. RDED's candidate crops (fgdd.selection.candidates) and the student's augmentation
(fgdd.evaluation.augment) both draw their boxes here."""

from __future__ import annotations

import math

import torch

Box = tuple[int, int, int, int]  # top, left, height, width in pixels

TRIES = 10  # torchvision's attempts at a box that fits before the central fallback


def resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> Box:
    """A box of area fraction ~ U(scale) and aspect (width / height) log-uniform in ``ratio``, placed uniformly;
    the central crop at the allowed aspect when none of 10 tries fits. Draws in get_params' order: per try an area
    and a log-aspect, then (first fitting try) the top and the left offset.

    ``dtype`` is the precision of the two uniform draws and of log/exp. float32 is torchvision's own: with
    ``torch.Generator().manual_seed(s)`` the boxes equal get_params' after ``torch.manual_seed(s)``, draw for draw.
    The student's augmentation has always drawn float64 (a float64 draw takes two 32-bit words of the stream, so the
    two precisions give different boxes from one seed, with the same distribution)."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio, dtype=dtype))  # (2,)
    low, high = float(log_ratio[0]), float(log_ratio[1])
    for _ in range(TRIES):
        target_area = area * torch.empty(1, dtype=dtype).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1, dtype=dtype).uniform_(low, high, generator=generator)).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator))
            return top, left, h, w
    return central_box(height, width, ratio)


def central_box(height: int, width: int, ratio: tuple[float, float]) -> Box:
    # RandomResizedCrop's fallback when no try fits: a central crop at the allowed aspect (with scale (1, 1), i.e.
    # factor 1, this is the whole image)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
