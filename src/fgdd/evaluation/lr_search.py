"""DD-Ranking's learning-rate search around any evaluator (``evaluator=hard_lr_search``).

DD-Ranking (NUS-HPC-AI-Lab/DD-Ranking, ``ddranking/metrics``) trains the hard-label student on a distilled set once
per learning rate in {0.001, 0.005, 0.01, 0.05, 0.1} and keeps the best, so that a method is not ranked by how
well its images suit one fixed learning rate. DD-Ranking picks that best by accuracy on the test set itself.
Here the choice is made on a split the reported number never sees, unless asked otherwise:

- ``select_on="holdout"`` (default): every learning rate's student is scored on a class-balanced, seeded sample
  of the *training* split (``holdout_per_class`` images per class) that leaves out every image the distilled set
  was cut from (its manifest's ``source`` files); the chosen learning rate is then trained once more, same seed,
  and that student's test accuracy is the reported number. Cost: one training per learning rate, plus one.
- ``select_on="test"``: DD-Ranking's own rule, the best test accuracy over the learning rates is reported (a
  maximum over the test set: optimistic by construction; say so wherever the number goes).

Ties go to the smaller learning rate (the list is searched in order, the first maximum wins, as in DD-Ranking).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torch import nn
from torch.utils.data import Dataset

from fgdd.errors import ConfigError
from fgdd.evaluation.holdout import check_inner_follows, distilled_sources, holdout_split

log = logging.getLogger(__name__)

DD_RANKING_LRS = (0.001, 0.005, 0.01, 0.05, 0.1)
SELECT_METRIC = "student/top1_final"  # the selection uses the final epoch, the number fgdd reports


class LRSearchEvaluator:
    def __init__(
        self,
        inner: Any,  # an evaluator with evaluate(...) (fgdd.evaluation.SoftLabelEvaluator)
        lrs: Sequence[float] = DD_RANKING_LRS,
        select_on: Literal["holdout", "test"] = "holdout",
        dataset: Any = None,  # fgdd.data.ImageDataset: its train split gives the holdout (select_on=holdout)
        holdout_per_class: int = 50,
        holdout_seed: int = 0,  # the holdout is the same for every run seed (one selection split per dataset)
        epochs: int | None = None,  # must equal inner.epochs: top-level so `evaluator.epochs=N` works for every
        num_workers: int | None = None,  # evaluator of a sweep (the YAML interpolates inner's from these)
        select_metric: str = SELECT_METRIC,  # student/top1_best_tail: DD-Ranking's best of its evaluations
        search_selectors: Sequence[str] | None = None,  # None: search for every set; else only for these selectors,
        selector: str | None = None,  # the run's (selector.name); the others train once at the recipe's lr
        protocol: str = "fgdd",  # a label the report shows and groups by (fgdd | ddranking)
    ) -> None:
        if not lrs or any(lr <= 0 for lr in lrs):
            raise ConfigError(f"evaluator.lrs must be a non-empty list of positive learning rates, got {list(lrs)}")
        if select_on not in ("holdout", "test"):
            raise ConfigError(f"evaluator.select_on must be 'holdout' or 'test', got {select_on!r}")
        if select_on == "holdout" and dataset is None:
            raise ConfigError("evaluator.select_on=holdout draws its holdout from the dataset; pass dataset")
        if holdout_per_class < 1:
            raise ConfigError(f"evaluator.holdout_per_class must be >= 1, got {holdout_per_class}")
        check_inner_follows(inner, epochs=epochs, num_workers=num_workers)
        self.inner = inner
        self.lrs = [float(lr) for lr in lrs]
        self.select_on = select_on
        self.dataset = dataset
        self.holdout_per_class = holdout_per_class
        self.holdout_seed = holdout_seed
        self.select_metric = select_metric
        self.search = search_selectors is None or selector in search_selectors
        self.protocol = protocol

    def evaluate(self, distilled: Dataset, val: Any, student: nn.Module, teacher: nn.Module | None, *, lr: float,
                 seed: int, trainer_kwargs: Mapping[str, Any], logger: Any = None, checkpoint: Path | None = None,
                 **settings: Any) -> dict[str, float]:
        """The inner evaluator's metrics for the chosen learning rate, plus ``lr_search/*``; ``lr`` (the recipe's)
        is not used: the search replaces it. With ``checkpoint``, each training keeps its own beside it
        (``<name>-lr<rate>-<split>.ckpt``): a rerun of a killed search resumes the training it was in, and reads
        the ones that finished from theirs."""
        if not self.search:  # DD-Ranking searches only where the method gives no rate (its syn_lr)
            results = self.inner.evaluate(distilled, val, student, teacher, lr=lr, seed=seed,
                                          trainer_kwargs=trainer_kwargs, logger=logger, checkpoint=checkpoint,
                                          **settings)
            return {**results, "lr_search/lr": float(lr), "lr_search/trainings": 1.0,
                    "lr_search/train_seconds": results["student/train_seconds"]}
        initial = copy.deepcopy(student)  # every learning rate starts from the same weights

        def train(rate: float, split: Any, log_to: Any, split_name: str) -> dict[str, float]:
            own = None if checkpoint is None else checkpoint.with_name(
                f"{checkpoint.stem}-lr{rate:g}-{split_name}{checkpoint.suffix}")
            return self.inner.evaluate(distilled, split, copy.deepcopy(initial), teacher, lr=rate, seed=seed,
                                       trainer_kwargs=trainer_kwargs, logger=log_to, checkpoint=own, **settings)

        selection_split = val
        if self.select_on == "holdout":
            selection_split = holdout_split(self.dataset.train(), self.holdout_per_class,
                                            distilled_sources(distilled), self.holdout_seed)
        scores: dict[float, dict[str, float]] = {}
        for rate in self.lrs:
            scores[rate] = train(rate, selection_split, None, self.select_on)
            log.info("lr search: lr %g -> %s %.4f on the %s split", rate, self.select_metric,
                     scores[rate][self.select_metric], self.select_on)
        best = max(self.lrs, key=lambda rate: (scores[rate][self.select_metric], -self.lrs.index(rate)))
        results = scores[best] if self.select_on == "test" else train(best, val, logger, "test")
        extra = {f"lr_search/select_top1@{rate:g}": scores[rate][self.select_metric] for rate in self.lrs}
        extra["lr_search/lr"] = best
        extra["lr_search/trainings"] = float(len(self.lrs) + (self.select_on == "holdout"))
        extra["lr_search/train_seconds"] = sum(s["student/train_seconds"] for s in scores.values()) + (
            results["student/train_seconds"] if self.select_on == "holdout" else 0.0)
        return {**results, **extra}
