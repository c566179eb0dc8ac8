"""The teacher's validation top-1, measured once and reused by every run that shares the teacher.

Every run of a sweep (seeds x selectors x IPCs) shares one teacher, and the pass over the validation set that
measures it costs as much as several student epochs on a CPU. The result depends only on the teacher's weights,
the validation split's content, the evaluation transform and the kind of device, so it is cached under
``<cache_dir>/teacher_accuracy/`` keyed by exactly these; any change among them measures again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import fgdd
from fgdd.cache.keyed import KeyedEntry
from fgdd.data.base import ImageSplit
from fgdd.models.checkpoint import weights_sha256

# Bump when fgdd.data.transforms.eval_transform or teacher_accuracy change what they compute.
EVAL_PROTOCOL = "resize(input//7*8)-centercrop-top1:v1"


def accuracy_key(
    model: nn.Module, split: ImageSplit, input_size: int, mean: Any, std: Any, device: torch.device | str
) -> dict[str, Any]:
    return {
        "weights_sha256": weights_sha256(model),
        "split_root": str(Path(split.root).resolve()),
        "split_sha256": split.content_sha256(),
        "input_size": int(input_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "protocol": EVAL_PROTOCOL,
        "device_type": torch.device(device).type,  # CPU and CUDA kernels may break near-ties differently
        "torch": torch.__version__,
        "fgdd": fgdd.__version__,
    }


class TeacherAccuracyCache:
    """``<cache_dir>/teacher_accuracy/<digest>.json``: {"val_top1": ..., "key": {...}}."""

    def __init__(self, cache_dir: str | Path, key: dict[str, Any]) -> None:
        self.entry = KeyedEntry(cache_dir, "teacher_accuracy", key, suffix=".json")
        self.path = self.entry.path

    def get(self) -> float | None:
        """The stored top-1, or None (absent, unreadable or written for another key: measured again)."""
        return self.entry.read_json(_val_top1)

    def put(self, val_top1: float) -> None:
        self.entry.write_json({"val_top1": val_top1})  # a concurrent run's equal measurement may be there first


def _val_top1(record: dict[str, Any]) -> float:
    value = float(record["val_top1"])
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"val_top1 {value} is not a fraction")
    return value
