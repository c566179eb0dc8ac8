"""The teacher's training split decoded once for the batched pipeline: every image made square as ``dataset.aspect``
says and resized to a storage size, kept as one uint8 tensor (and in the cache, fgdd.data.decoded), from which each
batch's augmentation is cut on the training device (fgdd.training.batches)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision import transforms as T

from fgdd.data.decoded import decode_split, decode_split_cached
from fgdd.data.transforms import SquareResize

log = logging.getLogger(__name__)

# Bump when the stored pixels would differ for the same split, size and aspect
TRAIN_IMAGES_VERSION = "train-images-v1"


def storage_size(input_size: int, augment: str) -> int:
    # pad_crop_flip crops input-sized windows from the input-sized square (its per-image transform resizes to the input
    # first); random_resized_crop cuts its boxes from a square of RDED's evaluation resize (input // 7 * 8: 128 -> 146),
    # so that crops of most of the image are resized down, not up
    return input_size if augment == "pad_crop_flip" else input_size // 7 * 8


def decoded_bytes(split: Any, size: int) -> int:
    return len(split) * 3 * size * size


def decode_train_images(
    split: Any, size: int, aspect: str, *, cache_dir: str | Path | None, num_workers: int = 0
) -> tuple[Tensor, Tensor]:
    """(N, 3, size, size) uint8 and (N,) labels: each image of ``split`` (an ImageSplit; unreadable train images are
    replaced as when training through the loader) squared by ``aspect`` and resized to ``size``."""
    geometry = T.Compose([SquareResize(size, aspect), T.PILToTensor()])
    if cache_dir is None:
        return decode_split(split, geometry, size, num_workers)
    key = {
        "version": TRAIN_IMAGES_VERSION,
        "split_root": str(Path(split.root).resolve()),
        "split_sha256": split.content_sha256(),
        "size": int(size),
        "aspect": aspect,
    }
    return decode_split_cached(split, geometry, size, cache_dir=cache_dir, kind="train_images", key=key,
                               prefix=f"{Path(split.root).name}-{size}px-{aspect}", num_workers=num_workers,
                               what="train split")
