"""A split decoded once into one uint8 tensor (a fixed geometry applied to every image), optionally kept in the
cache (``<cache_dir>/<kind>/``, fgdd.cache.keyed) under a key of the split's content and the geometry, so that
every later run on the same files reads the tensor instead of decoding again. The validation split
(fgdd.evaluation.eval_images) and the teacher's training split (fgdd.training.train_images) are both held so."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from fgdd.cache.keyed import KeyedEntry

log = logging.getLogger(__name__)

Geometry = Callable[[Any], Tensor]  # PIL RGB image -> (3, size, size) uint8


def decode_split(split: Any, geometry: Geometry, size: int, num_workers: int = 0) -> tuple[Tensor, Tensor]:
    """(N, 3, size, size) uint8 pixels and (N,) labels of ``split`` (an ImageSplit) in split order."""
    n = len(split)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    loader = DataLoader(split.with_transform(geometry), batch_size=256, num_workers=num_workers)
    start = 0
    for batch, targets in loader:  # (b, 3, s, s) uint8, (b,)
        images[start : start + len(batch)] = batch
        labels[start : start + len(batch)] = targets
        start += len(batch)
    return images, labels


def decode_split_cached(
    split: Any, geometry: Geometry, size: int, *, cache_dir: str | Path, kind: str, key: Mapping[str, Any],
    prefix: str, num_workers: int = 0, what: str = "split",
) -> tuple[Tensor, Tensor]:
    """``decode_split``, read from / written to the cache entry of ``kind`` and ``key`` (a truncated, foreign or
    older file is set aside and decoded again; a cache that cannot be written only costs a decode later)."""
    entry = KeyedEntry(cache_dir, kind, key, prefix=prefix, suffix=".pt")

    def load(path: Path) -> tuple[Any, tuple[Tensor, Tensor]]:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = stored["images"], stored["labels"]
        if len(images) != len(split) or tuple(images.shape[1:]) != (3, size, size) or images.dtype != torch.uint8:
            raise ValueError(f"it holds {tuple(images.shape)} {images.dtype} for {len(split)} images")
        return json.loads(stored["key"]), (images, labels)

    cached = entry.read(load)
    if cached is not None:
        log.info("%s read decoded from %s", what, entry.path)
        return cached
    images, labels = decode_split(split, geometry, size, num_workers)
    try:
        entry.write(lambda tmp: torch.save({"images": images, "labels": labels, "key": json.dumps(entry.key)}, tmp))
    except OSError as error:
        log.warning("could not store the decoded %s in %s: %s", what, entry.path, error)
    return images, labels
