"""The one home of per-channel normalisation: the (1, c, 1, 1) mean and std every batched site subtracts and divides
by, and ``normalise``, uint8 pixels -> the floats ``fgdd.data.transforms.eval_transform`` gives.

ToTensor divides the same uint8 values by 255 and Normalize subtracts and divides by the same float32 constants, so
``normalise`` matches them exactly. Sites that resize between the 1/255 and the normalisation (the student's
augmentations) or fold 1/255 into the constants (``BatchAugment``) take the constants from ``channel_stats`` and
keep their own order of operations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def channel_stats(mean: Sequence[float], std: Sequence[float], device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(1, c, 1, 1) mean and std on ``device``, broadcasting over (n, c, h, w) batches."""
    mean_t = torch.tensor(list(mean), dtype=dtype, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(list(std), dtype=dtype, device=device).view(1, -1, 1, 1)
    return mean_t, std_t


def normalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(n, c, s, s) uint8 -> float32, the same operations in the same order as ToTensor + Normalize."""
    mean_t, std_t = channel_stats(mean, std, images.device)
    return images.float().div_(255).sub_(mean_t).div_(std_t)
