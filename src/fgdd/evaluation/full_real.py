"""The upper reference of DD-Ranking's hard-label recovery (``evaluator=full_real``): the student trained with hard
labels on the whole real training split, tested on the val split. The run's distilled set is not used.

One such training costs as much as hundreds of distilled-set students, and its result depends only on the
dataset, the student's architecture and initial weights (the run seed), the recipe and the kind of device; so it
is cached under ``<cache_dir>/full_real/`` (fgdd.cache.full_real) keyed by exactly these, and every other run of a
sweep (other selectors, IPCs, teachers, tables) with the same key reads it back instead of training again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

import fgdd
from fgdd.cache.full_real import ReferenceCache
from fgdd.data.spec import DatasetSpec
from fgdd.errors import ConfigError
from fgdd.evaluation.optim import DEFAULTS as OPTIMIZER_DEFAULTS
from fgdd.models.checkpoint import weights_sha256
from fgdd.utils.distributed import is_main_process

log = logging.getLogger(__name__)

CACHED = "reference/cached"  # 1.0 when the metrics were read from the cache, 0.0 when trained here


# settings that change how fast the student trains, or how it resumes, never what it learns (tested for the loader
# workers and the checkpoints)
_NOT_IN_KEY = ("num_workers", "val_batch_size", "checkpoint_every_s")


def _recipe(inner: Any) -> dict[str, Any]:
    # the inner evaluator's settings, as plain values (a SoftLabelEvaluator's StudentSettings fields: the names and
    # values its constructor arguments had as its attributes before, so cached references keep their keys)
    # (the optimizer settings only where they are not fgdd's recipe: references cached before they existed still match)
    settings = getattr(inner, "settings", inner)
    return {k: v for k, v in sorted(vars(settings).items())
            if isinstance(v, (bool, int, float, str, type(None))) and k not in _NOT_IN_KEY
            and not (k in OPTIMIZER_DEFAULTS and v == OPTIMIZER_DEFAULTS[k])}


def _device_type(trainer_kwargs: Mapping[str, Any]) -> str:
    accelerator = str(trainer_kwargs.get("accelerator", "auto"))
    if accelerator == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return "cuda"  # CPU and CUDA kernels round differently; a reference made on one is not the other's


class WholeTrainSplit(Dataset):
    """The real training split as a student's training set (``StudentTrainingSet``): photos, not mosaics, so factor 1
    (the tile shuffle of RDED's augmentation does not apply), and its ipc the images per class on average."""

    factor = 1

    def __init__(self, split: Any, num_classes: int) -> None:  # split: fgdd.data.ImageSplit without a transform
        self.split = split
        self.ipc = max(1, len(split) // num_classes)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.split[index]


class FullRealEvaluator:
    def __init__(
        self,
        inner: Any,  # the student recipe (fgdd.evaluation.SoftLabelEvaluator with hard_labels=true)
        dataset: Any,  # fgdd.data.ImageDataset: its train split is the training set
        cache_dir: str,
        lr: float | None = None,  # None: the run's (model.lr)
        epochs: int | None = None,  # must equal inner.epochs; top-level so `evaluator.epochs=N` works here too
        num_workers: int | None = None,
        protocol: str = "fgdd",  # a label the report shows and groups by (fgdd | ddranking); the recipe is inner's
    ) -> None:
        if not getattr(inner, "hard_labels", False):
            raise ConfigError("the full-real reference trains with hard labels; set evaluator.inner.hard_labels=true")
        if getattr(inner, "batch_size", None) is None:
            raise ConfigError("evaluator.inner.batch_size must be set for the full-real reference (RDED's batch rule "
                              "is for distilled sets of a given IPC)")
        for name, value in (("epochs", epochs), ("num_workers", num_workers)):
            if value is not None and getattr(inner, name, value) != value:
                raise ConfigError(f"evaluator.{name}={value} but evaluator.inner.{name}={getattr(inner, name)}; "
                                  f"set evaluator.{name} (the inner one follows it)")
        if lr is not None and lr <= 0:
            raise ConfigError(f"evaluator.lr must be > 0 or null (the model's), got {lr}")
        self.inner = inner
        self.dataset = dataset
        self.cache_dir = cache_dir
        self.lr = lr
        self.protocol = protocol

    def key(self, train: Any, val: Any, student: nn.Module, lr: float, seed: int, spec: DatasetSpec,
            trainer_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "train_root": str(Path(train.root).resolve()),
            "train_sha256": train.content_sha256(),
            # a decoded split (EvalImages) has no folder: its pixels identify it
            "val_root": str(Path(val.root).resolve()) if hasattr(val, "root") else None,
            "val_sha256": val.content_sha256(),
            "student": type(student).__name__,
            "student_init_sha256": weights_sha256(student),  # the architecture and its initial weights (the seed)
            "recipe": _recipe(self.inner),
            "lr": float(lr),
            "seed": int(seed),
            "input_size": int(spec.input_size),
            "mean": [float(m) for m in spec.mean],
            "std": [float(s) for s in spec.std],
            "device_type": _device_type(trainer_kwargs),
            "torch": torch.__version__,
            "fgdd": fgdd.__version__,
        }

    def evaluate(self, distilled: Dataset, val: Any, student: nn.Module, teacher: nn.Module | None, *, lr: float,
                 spec: DatasetSpec, seed: int, trainer_kwargs: Mapping[str, Any], logger: Any = None,
                 checkpoint: Path | None = None) -> dict[str, float]:
        """``distilled`` and ``teacher`` are not used: the training set is the dataset's whole train split, with
        hard labels."""
        train = self.dataset.train()
        if list(train.classes) != list(getattr(val, "classes", train.classes)):
            raise ConfigError(f"train and val splits disagree on the classes: {train.classes} vs {val.classes}")
        rate = self.lr if self.lr is not None else lr
        cache = ReferenceCache(self.cache_dir, self.dataset.name,
                               self.key(train, val, student, rate, seed, spec, trainer_kwargs))
        cached = cache.get()
        if cached is not None:
            log.info("full-real reference read from %s", cache.path)
            return {**cached, CACHED: 1.0}
        log.info("training the full-real reference on %d images (cached afterwards in %s)", len(train), cache.path)
        results = self.inner.evaluate(WholeTrainSplit(train, spec.num_classes), val, student, None, lr=rate, spec=spec,
                                      seed=seed, trainer_kwargs=trainer_kwargs, logger=logger, checkpoint=checkpoint)
        results = {**results, "reference/train_images": float(len(train)), "reference/lr": float(rate)}
        if is_main_process():
            cache.put(results)
        return {**results, CACHED: 0.0}
