"""Occupancy per image, computed once per dataset + segmenter setting and stored with the key it belongs to;
every IPC and seed of a sweep reuses it, and only images not yet measured are segmented."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fgdd.cache.keyed import KeyedEntry, set_aside
from fgdd.errors import CorruptImageError, FgddError
from fgdd.foreground.base import Segmenter, occupancy
from fgdd.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cache_key(dataset_name: str, classes: Sequence[str], split_root: str, segmenter: Segmenter) -> dict[str, Any]:
    key = {"format": CACHE_FORMAT, "dataset": dataset_name, "classes": list(classes), "split_root": split_root,
           "segmenter": segmenter.cache_key()}
    # a segmenter whose masks change with a package's version (model code in transformers, sam2) names the
    # packages in `packages`; their installed versions join the key, so an upgrade measures again
    packages = tuple(getattr(segmenter, "packages", ()) or ())
    if packages:
        key["packages"] = {name: _version(name) for name in sorted(packages)}
    return key


def _checksum(values: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _checked(stored: dict[str, Any]) -> dict[str, float]:
    """The values of a main file or chunk whose checksum matches them (else ValueError)."""
    values = {k: float(v) for k, v in stored["occupancy"].items()}
    if stored["checksum"] != _checksum(values):
        raise ValueError("checksum mismatch")
    return values


class OccupancyStore:
    """``<cache_dir>/occupancy/<dataset>-<segmenter>-<hash>.json``: {key, checksum, occupancy: {relpath: value}},
    plus ``<same stem>.chunks/``: one small file per segmented batch, {key_sha256, checksum, occupancy}.

    Every batch is written as its own chunk, atomically, so a killed run keeps what it measured and no batch
    rewrites what is already stored; chunks are merged into the main file (atomically, then removed) when they
    hold as many values as it does, every ``max_pending_chunks`` chunks and at the end of a measurement, so the
    total writing stays proportional to the number of images. The main file is a keyed entry (fgdd.cache.keyed):
    one whose key or checksum does not match, like such a chunk, is not trusted: it is set aside (renamed
    ``*.untrusted``, never deleted) and its images are measured again.
    """

    def __init__(self, cache_dir: str | Path, key: dict[str, Any], store_masks: bool = False,
                 max_pending_chunks: int = 256) -> None:
        prefix = f"{key['dataset']}-{key['segmenter'].get('name', 'seg')}"
        self.entry = KeyedEntry(cache_dir, "occupancy", key, prefix=prefix, suffix=".json")
        self.key, self.digest, self.path = self.entry.key, self.entry.digest, self.entry.path
        self.chunk_dir = self.path.with_suffix(".chunks")
        self.mask_dir = self.path.with_suffix("") if store_masks else None
        self.max_pending_chunks = max_pending_chunks
        self._chunks: list[Path] = []  # chunk files whose values are not yet in the main file
        self._pending = 0  # values in those chunks
        self._consolidated = 0  # values in the main file
        self.values: dict[str, float] = self._load()

    def _read_chunk(self, path: Path) -> dict[str, float] | None:
        try:
            stored = json.loads(path.read_text())
            if stored["key_sha256"] != self.digest:
                raise ValueError("key_sha256 mismatch")
            return _checked(stored)
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSON errors are ValueErrors
            set_aside(path, str(error))
            return None

    def _load(self) -> dict[str, float]:
        values = self._read_main()
        self._consolidated = len(values)
        for chunk, part in self._read_chunks():
            values.update(part)
            self._chunks.append(chunk)
            self._pending += len(part)
        return values

    def _read_main(self) -> dict[str, float]:
        return self.entry.read_json(_checked) or {}

    def _read_chunks(self) -> list[tuple[Path, dict[str, float]]]:
        if not self.chunk_dir.is_dir():
            return []
        chunks = []
        for chunk in sorted(self.chunk_dir.glob("*.json")):
            try:
                part = self._read_chunk(chunk)
            except FileNotFoundError:  # merged and removed by another process meanwhile
                continue
            if part is not None:
                chunks.append((chunk, part))
        return chunks

    def update(self, values: dict[str, float]) -> None:
        if not values:
            return
        self.values.update(values)
        chunk = self.chunk_dir / f"{time.time_ns():020d}-{os.getpid()}.json"
        atomic_write_json(chunk, {"key_sha256": self.digest, "checksum": _checksum(values), "occupancy": values})
        self._chunks.append(chunk)
        self._pending += len(values)
        if self._pending >= self._consolidated or len(self._chunks) >= self.max_pending_chunks:
            self.consolidate()

    def consolidate(self) -> None:
        """Merge the chunks into the main file (written atomically first, so a kill here loses nothing).

        Several processes may fill one cache at once (``python -m fgdd.segment`` shards): under an exclusive lock,
        what others merged into the main file and the chunks they wrote are read again and kept.
        """
        if not self._chunks:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = self._read_main()
            others = self._read_chunks()
            for _, part in others:
                merged.update(part)
            merged.update(self.values)
            atomic_write_json(self.path, {"key": self.key, "checksum": _checksum(merged), "occupancy": merged})
            # only chunks now inside the main file are removed
            for chunk in {*self._chunks, *(path for path, _ in others)}:
                chunk.unlink(missing_ok=True)
        self.values = merged
        self._chunks, self._pending, self._consolidated = [], 0, len(merged)

    def save_mask(self, source: str, mask: np.ndarray) -> None:
        if self.mask_dir is None:
            return
        buffer = io.BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
        atomic_write_bytes(self.mask_dir / (source + ".png"), buffer.getvalue())


def _check_masks(segmenter: Segmenter, batch: list[Image.Image], sources: list[str], masks: Sequence[Any]) -> None:
    # zip() would silently drop images a segmenter returned no mask for; a mask of another size means it was
    # computed on something else than the image it is stored for
    name = getattr(segmenter, "name", type(segmenter).__name__)
    if len(masks) != len(batch):
        raise FgddError(f"segmenter {name} returned {len(masks)} masks for {len(batch)} images ({sources[0]} ...)")
    for image, source, mask in zip(batch, sources, masks):
        if np.shape(mask) != (image.height, image.width):
            raise FgddError(f"segmenter {name}: mask of shape {np.shape(mask)} for {source}, an image of "
                            f"{image.height}x{image.width}; masks must have the image's own size")


def measure_occupancy(
    segmenter: Segmenter,
    split: Any,
    indices: Sequence[int],
    class_names: Sequence[str],
    store: OccupancyStore,
    batch_size: int = 16,
) -> dict[str, float]:
    """Occupancy of ``split`` images ``indices`` (relpath -> value), segmenting only those not in ``store``.

    Batches mix classes (each image carries its own prompt), so the segmenter runs full batches. An image whose
    mask is empty (the segmenter found nothing) has occupancy 0; an unreadable image gets no value (a warning).
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
        _check_masks(segmenter, batch, sources, masks)
        for source, mask in zip(sources, masks):
            store.save_mask(source, mask)
        store.update({source: occupancy(mask) for source, mask in zip(sources, masks)})
    store.consolidate()
    return {split.relpath(i): store.values[split.relpath(i)] for i in indices if split.relpath(i) in store.values}
