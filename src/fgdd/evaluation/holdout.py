"""A held-out part of the training split, for choosing settings without looking at test accuracy.

Two users: DD-Ranking's learning-rate search (``evaluator=hard_lr_search``, fgdd.evaluation.lr_search) and the
choice of fgdd's threshold default (``evaluator=holdout``: the student of a run is scored on this split instead
of the test split; ``benchmarks/threshold_holdout.sh`` compares thresholds by it). The split is class-balanced,
seeded, and leaves out every image the distilled set was cut from (its manifest's ``source`` files). Its images
were seen by the teacher, which trained on the whole training split: the score measures how well the student
learned from the distilled set on images it never saw, with the same bias for every setting compared.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from fgdd.data.base import ImageSplit
from fgdd.errors import ConfigError
from fgdd.utils.seeding import HOLDOUT, generator

log = logging.getLogger(__name__)


def holdout_split(train: ImageSplit, per_class: int, exclude: set[str], seed: int) -> ImageSplit:
    """``per_class`` training images of each class, drawn with ``seed``, none of them in ``exclude`` (relpaths)."""
    samples = []
    for label, class_id in enumerate(train.classes):
        pool = [i for i in train.indices_of_class(label) if train.relpath(i) not in exclude]
        if len(pool) < per_class:
            raise ConfigError(
                f"the holdout needs {per_class} training images of class {class_id!r} outside the "
                f"distilled set's sources, but only {len(pool)} are left; lower evaluator.holdout_per_class"
            )
        samples.extend(train.samples[i] for i in _draw(pool, per_class, seed, label))
    return ImageSplit(train.root, train.classes, samples, base=train.base, max_bad_fraction=train.max_bad_fraction)


def _draw(pool: list[int], k: int, seed: int, label: int) -> list[int]:
    # a seeded permutation of the pool, first k kept, then sorted: the holdout is a set, its order irrelevant;
    # one holdout per (dataset, holdout seed) whichever setting it chooses
    order = torch.randperm(len(pool), generator=generator(seed, HOLDOUT, label))[:k]
    return sorted(pool[i] for i in order.tolist())


def distilled_sources(distilled: Dataset) -> set[str]:
    """The training images the distilled set was cut from (relpaths of its manifest)."""
    manifest = getattr(distilled, "manifest", None)
    if manifest is None:
        raise ConfigError(
            "the holdout must leave out the images the distilled set came from, but this set has no manifest "
            "(a fgdd DistilledSet has one); score on the test set instead (evaluator.select_on=test for the lr search)"
        )
    return {record["source"] for record in manifest()}


def as_holdout_metrics(results: dict[str, float]) -> dict[str, float]:
    """The inner evaluator's accuracies renamed ``holdout/*`` (``student/top1_final`` -> ``holdout/top1_final``), so
    that a holdout score is never read as a test accuracy; costs and timings keep their names."""
    renamed = {}
    for key, value in results.items():
        kind, _, name = key.partition("/")
        renamed[f"holdout/{name}" if kind == "student" and name.startswith("top") else key] = value
    return renamed


def check_inner_follows(inner: Any, **settings: int | None) -> None:
    """A wrapping evaluator's top-level settings (``evaluator.epochs=N`` works for every evaluator of a sweep) must
    be the ones its inner evaluator got (the YAML interpolates them); None: not set at the top."""
    for name, value in settings.items():
        if value is not None and getattr(inner, name, value) != value:
            raise ConfigError(f"evaluator.{name}={value} but evaluator.inner.{name}={getattr(inner, name)}; "
                              f"set evaluator.{name} (the inner one follows it)")


class HoldoutEvaluator:
    """Trains the student exactly as ``inner`` does and scores it on the training holdout instead of the test split
    (``evaluator=holdout``). Its metrics hold ``holdout/top1_final`` (and top5, best_tail) and no test accuracy."""

    def __init__(
        self,
        inner: Any,  # an evaluator with evaluate(...) (fgdd.evaluation.SoftLabelEvaluator)
        dataset: Any,  # fgdd.data.ImageDataset: its train split gives the holdout
        holdout_per_class: int = 50,
        holdout_seed: int = 0,  # the same holdout for every run seed and every setting compared
        epochs: int | None = None,  # must equal inner.epochs: top-level so `evaluator.epochs=N` works for every
        num_workers: int | None = None,  # evaluator of a sweep (the YAML interpolates inner's from these)
    ) -> None:
        if holdout_per_class < 1:
            raise ConfigError(f"evaluator.holdout_per_class must be >= 1, got {holdout_per_class}")
        check_inner_follows(inner, epochs=epochs, num_workers=num_workers)
        self.inner = inner
        self.dataset = dataset
        self.holdout_per_class = holdout_per_class
        self.holdout_seed = holdout_seed

    def evaluate(self, distilled: Dataset, val: Any, student: nn.Module, teacher: nn.Module | None,
                 **settings: Any) -> dict[str, float]:
        """``val`` (the test split) is not used: the student is scored on the holdout."""
        holdout = holdout_split(self.dataset.train(), self.holdout_per_class, distilled_sources(distilled),
                                self.holdout_seed)
        log.info("scoring the student on a training holdout of %d images (%d per class), not on the test split",
                 len(holdout), self.holdout_per_class)
        results = as_holdout_metrics(self.inner.evaluate(distilled, holdout, student, teacher, **settings))
        return {**results, "holdout/images": float(len(holdout))}
