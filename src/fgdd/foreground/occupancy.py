"""Occupancy per image, computed once per dataset + segmenter setting and stored in one file with the image list
it belongs to; every IPC and seed of a sweep reuses it, and only images not yet measured are segmented."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fgdd.errors import CorruptImageError
from fgdd.foreground.base import Segmenter, occupancy
from fgdd.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def cache_key(dataset_name: str, classes: Sequence[str], split_root: str, segmenter: Segmenter) -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "dataset": dataset_name, "classes": list(classes), "split_root": split_root,
            "segmenter": segmenter.cache_key()}


class OccupancyStore:
    """``<cache_dir>/occupancy/<dataset>-<segmenter>-<hash>.json``: {key, checksum, occupancy: {relpath: value}}.

    The file is rewritten atomically after every batch, so a killed run keeps what it measured. A file whose
    key or checksum does not match is not trusted: it is set aside (renamed, never deleted) and recomputed.
    """

    def __init__(self, cache_dir: str | Path, key: dict[str, Any], store_masks: bool = False) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.key = key
        self.path = Path(cache_dir) / "occupancy" / f"{key['dataset']}-{key['segmenter'].get('name', 'seg')}-{digest[:12]}.json"
        self.mask_dir = self.path.with_suffix("") if store_masks else None
        self.values: dict[str, float] = self._load()

    @staticmethod
    def _checksum(values: dict[str, float]) -> str:
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()

    def _load(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        try:
            stored = json.loads(self.path.read_text())
            values = {k: float(v) for k, v in stored["occupancy"].items()}
            if stored["key"] != json.loads(json.dumps(self.key, default=str)) or stored["checksum"] != self._checksum(values):
                raise ValueError("key or checksum mismatch")
            return values
        except (ValueError, KeyError, TypeError) as error:
            aside = self.path.with_name(self.path.name + ".untrusted")
            log.warning("occupancy cache %s not trusted (%s); moved to %s and recomputing", self.path, error, aside)
            self.path.rename(aside)
            return {}

    def update(self, values: dict[str, float]) -> None:
        self.values.update(values)
        atomic_write_json(self.path, {"key": self.key, "checksum": self._checksum(self.values), "occupancy": self.values})

    def save_mask(self, source: str, mask: np.ndarray) -> None:
        if self.mask_dir is None:
            return
        buffer = io.BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
        atomic_write_bytes(self.mask_dir / (source + ".png"), buffer.getvalue())


def measure_occupancy(
    segmenter: Segmenter,
    split: Any,
    indices: Sequence[int],
    class_names: Sequence[str],
    store: OccupancyStore,
    batch_size: int = 16,
) -> dict[str, float]:
    """Occupancy of ``split`` images ``indices`` (relpath -> value), segmenting only those not in ``store``.

    Batches mix classes (each image carries its own prompt), so the segmenter runs full batches.
    """
    todo = [i for i in indices if split.relpath(i) not in store.values]
    if todo:
        log.info("segmenting %d images (%d already cached in %s)", len(todo), len(indices) - len(todo), store.path)
    for start in tqdm(range(0, len(todo), batch_size), desc="occupancy", unit="batch", disable=not todo):
        batch, sources, labels = [], [], []
        for index in todo[start : start + batch_size]:
            try:
                batch.append(split.load_rgb(index))
            except CorruptImageError as error:
                log.warning("no occupancy for unreadable image: %s", error)
                continue
            sources.append(split.relpath(index))
            labels.append(split.targets[index])
        if not batch:
            continue
        masks = segmenter.masks(batch, labels=labels, prompts=[class_names[y] for y in labels], sources=sources)
        for source, mask in zip(sources, masks):
            store.save_mask(source, mask)
        store.update({source: occupancy(mask) for source, mask in zip(sources, masks)})
    return {split.relpath(i): store.values[split.relpath(i)] for i in indices if split.relpath(i) in store.values}
