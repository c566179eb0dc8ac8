"""Experiment tracking around a run: the Lightning logger from ``conf/logger``, plus what W&B can hold that
Lightning does not log by itself (resolved config, figures, the distilled set as an artifact, final metrics).

``logger=csv`` and ``logger=none`` never import wandb.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

log = logging.getLogger(__name__)


def is_wandb(logger: Any) -> bool:
    return type(logger).__name__ == "WandbLogger"


def make_logger(settings: Mapping[str, Any] | None, run_dir: Path, *, name: str, job_type: str, tags: Sequence[str],
                sweep_group: str | None, hyperparams: Mapping[str, Any]) -> Any:
    """The logger of ``settings`` (conf/logger as plain values, its ``_target_`` included; None: no logger) writing
    into ``run_dir``, with the run's resolved config as its hyperparameters. A W&B run is named ``name`` with
    ``job_type`` and ``tags``; W&B runs of one sweep share ``sweep_group`` unless ``settings`` name a group."""
    if settings is None:
        return None
    extra: dict[str, Any] = {"save_dir": str(run_dir)}
    if str(settings.get("_target_", "")).endswith("WandbLogger"):
        extra["name"] = name
        extra["job_type"] = job_type
        extra["tags"] = list(tags)
        if settings.get("group") is None and sweep_group is not None:
            extra["group"] = sweep_group
    logger = instantiate(dict(settings), **extra)
    logger.log_hyperparams(dict(hyperparams))
    return logger


def log_figures(logger: Any, figures: dict[str, Path]) -> None:
    if logger is not None and hasattr(logger, "log_image"):  # W&B (and other image-capable loggers)
        for key, path in figures.items():
            logger.log_image(key=f"figures/{key}", images=[str(path)])


def log_distilled_set(logger: Any, distilled_dir: Path, name: str, metadata: dict[str, Any]) -> None:
    """The distilled set (images, manifest, distilled.json) as a W&B artifact of type ``distilled-set``."""
    if not is_wandb(logger):
        return
    import wandb

    artifact = wandb.Artifact(name=name, type="distilled-set", metadata=metadata)
    artifact.add_dir(str(distilled_dir))
    logger.experiment.log_artifact(artifact)


def finish(logger: Any, metrics: dict[str, float]) -> None:
    """Final metrics into the logger (and W&B's run summary); closes a W&B run so the next job starts its own."""
    if logger is None:
        return
    logger.log_metrics({f"final/{k}": v for k, v in metrics.items()})
    if is_wandb(logger):
        logger.experiment.summary.update(metrics)
    logger.finalize("success")
    if is_wandb(logger):
        import wandb

        wandb.finish()


def abort(logger: Any) -> None:
    """A failed run: close a W&B run marked failed so a sweep's next job does not log into it."""
    if is_wandb(logger):
        import wandb

        wandb.finish(exit_code=1)
