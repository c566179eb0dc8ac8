"""Distilled sets shared by runs that differ only after selection (student, evaluator, logger, trainer).

A distilled set depends on the dataset, the teacher, the selector (with its segmenter and threshold), ipc,
seed and the device kind; nothing else. Runs that agree on these (a cross-architecture table: one set,
several students) select once: the first run writes the set into its own folder and copies it to
``<cache_dir>/distilled/<key>/``; the others copy it from there. Every run folder still holds its own
complete copy (manifest included), so a run folder never depends on the cache.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fgdd
from fgdd.cache.keyed import KeyedEntry
from fgdd.run_folder import DISTILLED, DISTILLED_META, OCCUPANCY
from fgdd.utils.io import atomic_write_bytes, publish_folder

log = logging.getLogger(__name__)


def selection_key(*, dataset: Mapping[str, Any], teacher: Mapping[str, Any], selector: Mapping[str, Any], ipc: int,
                  seed: int, device_type: str, teacher_weights_sha256: str | None = None) -> dict[str, Any]:
    """Everything the distilled set depends on: ``dataset`` and ``selector`` are the run's resolved config groups as
    plain values (fgdd.pipeline.plain), ``teacher`` what the teacher object says identifies it (its ``key()``,
    fgdd.teacher): a checkpoint teacher its file's hash, a trained one its recipe and, given
    ``teacher_weights_sha256``, its weights: the recipe alone does not fix them (``precision=auto`` trains in bf16 on
    one CPU and fp32 on another, kernels round differently). The values are those of every key written before
    (tests/test_cache_distilled_key.py and tests/test_teacher_cache_key_pinned.py pin them)."""
    teacher = dict(teacher)
    if "checkpoint_sha256" not in teacher and teacher_weights_sha256 is not None:
        teacher["weights_sha256"] = teacher_weights_sha256
    selector = dict(selector)
    if selector.get("precision") == "fp32":  # every set selected before the setting existed was fp32: keys stay valid
        selector.pop("precision")
    return {
        "fgdd": fgdd.__version__,
        "dataset": dict(dataset),
        "teacher": teacher,
        "selector": selector,
        "ipc": ipc,
        "seed": seed,
        "device_type": device_type,  # CPU and CUDA kernels may rank near-equal crops differently
    }


class DistilledSetCache:
    """``<cache_dir>/distilled/<dataset>-<selector>-ipc<N>-seed<S>-<digest>/``: ``set/`` (a distilled set),
    occupancy.json when the selector measured it, and the key (fgdd.cache.keyed)."""

    def __init__(self, cache_dir: str | Path, key: dict[str, Any]) -> None:
        prefix = f"{key['dataset']['name']}-{key['selector']['name']}-ipc{key['ipc']}-seed{key['seed']}"
        self.entry = KeyedEntry(cache_dir, "distilled", key, prefix=prefix)
        self.folder = self.entry.path

    def has(self) -> bool:
        return self.entry.folder_matches() and (self.folder / "set" / DISTILLED_META).is_file()

    def copy_to(self, run_dir: Path) -> None:
        """Copy the cached set (and its occupancy summary) into ``run_dir``; each appears whole or not at all."""
        if (self.folder / OCCUPANCY).is_file() and not (run_dir / OCCUPANCY).exists():
            atomic_write_bytes(run_dir / OCCUPANCY, (self.folder / OCCUPANCY).read_bytes(), exclusive=True)
        with publish_folder(run_dir / DISTILLED) as staging:
            shutil.copytree(self.folder / "set", staging, dirs_exist_ok=True)
        log.info("distilled set reused from %s", self.folder)

    def store_from(self, run_dir: Path) -> None:
        """Copy a run's freshly written set into the cache; a concurrent job that got there first wins."""
        if self.has():
            return
        with self.entry.publish() as staging:
            if (run_dir / OCCUPANCY).is_file():
                shutil.copy2(run_dir / OCCUPANCY, staging / OCCUPANCY)
            shutil.copytree(run_dir / DISTILLED, staging / "set")
