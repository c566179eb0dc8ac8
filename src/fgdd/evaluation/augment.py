"""RDED's student-side augmentation (validation/utils.py and validation/main.py of LINs-lab/RDED), with every
random draw taken from an explicit torch generator so a run is reproducible from its seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms
from torchvision.transforms import functional as TF

# torchvision's RandomResizedCrop default aspect range; RDED does not change it
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def _strip_order(size: int, factor: int, perm: Tensor) -> Tensor:
    # pixel indices along one axis with the factor strips put in `perm` order; the last strip keeps the remainder
    # so an odd size is not shortened (RDED's loop drops it)
    step = size // factor
    edges = [k * step for k in range(factor)] + [size]
    return torch.cat([torch.arange(edges[k], edges[k + 1]) for k in perm.tolist()])


def shuffle_tiles(images: Tensor, factor: int, generator: torch.Generator) -> Tensor:
    # RDED's ShufflePatches: permute the factor column strips, then the factor row strips, independently per image.
    # Tiles therefore move as (row perm, column perm) pairs, exactly as in RDED, not as an arbitrary tile permutation.
    if factor == 1:
        return images
    n, _, h, w = images.shape  # (n, c, h, w)
    out = torch.empty_like(images)
    for i in range(n):
        cols = _strip_order(w, factor, torch.randperm(factor, generator=generator))
        rows = _strip_order(h, factor, torch.randperm(factor, generator=generator))
        out[i] = images[i][:, :, cols.to(images.device)][:, rows.to(images.device), :]
    return out


def cutmix(images: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, float]:
    # CutMix (Yun et al. 2019) as RDED draws it: permutation, lambda ~ Beta(1, 1) (= uniform), box centre uniform,
    # box side sqrt(1 - lambda) of each image side, clipped at the border. lambda is then corrected to the area
    # actually kept, so mixed hard labels weigh each source by its pixels.
    n, _, h, w = images.shape  # (n, c, h, w)
    perm = torch.randperm(n, generator=generator)
    lam = torch.rand(1, generator=generator, dtype=torch.float64).item()
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    perm = perm.to(images.device)
    mixed = images.clone()
    mixed[:, :, y1:y2, x1:x2] = images[perm, :, y1:y2, x1:x2]
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    return mixed, perm, lam


def resized_crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> tuple[int, int, int, int]:
    # torchvision's RandomResizedCrop.get_params, drawing from `generator` instead of the global RNG
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        draw = torch.empty(1, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator).item()
        target_area = area * draw
        aspect = math.exp(torch.empty(1, dtype=torch.float64).uniform_(*log_ratio, generator=generator).item())
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            j = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return i, j, h, w
    # fallback: central crop at the allowed aspect (with scale (1, 1), i.e. factor 1, this is the whole image)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class StudentTrainTransform:
    """RDED's train augmentation in RDED's order: ToTensor, ShufflePatches(factor),
    RandomResizedCrop(input_size, scale=(1/factor, 1)), RandomHorizontalFlip, Normalize."""

    def __init__(self, input_size: int, factor: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.input_size = input_size
        self.factor = factor
        self.scale = (1.0 / factor, 1.0)
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, image: Tensor, generator: torch.Generator) -> Tensor:
        x = image.float().div(255)  # (c, h, w) uint8 -> [0, 1], what ToTensor gives
        x = shuffle_tiles(x[None], self.factor, generator)[0]
        i, j, h, w = resized_crop_box(x.shape[1], x.shape[2], self.scale, CROP_RATIO, generator)
        x = TF.resized_crop(x, i, j, h, w, [self.input_size, self.input_size], antialias=True)
        if torch.rand(1, generator=generator).item() < 0.5:
            x = x.flip(-1)
        return TF.normalize(x, self.mean, self.std)  # (c, input_size, input_size)


def pil_to_uint8(image: Image.Image) -> Tensor:
    # RDED's loader converts to RGB as well; kept as uint8 so a preloaded distilled set costs what its pixels cost
    return TF.pil_to_tensor(image.convert("RGB"))  # (3, h, w) uint8
