"""``python -m fgdd.run``: teacher -> selection -> student evaluation, one self-describing run folder."""

from __future__ import annotations

import difflib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fgdd.config import register_resolvers, validate
from fgdd.models.checkpoint import build_model
from fgdd.errors import FgddError, TeacherTooWeakError
from fgdd.provenance import resolved_yaml, run_record
from fgdd.selection import DistilledSet, write_distilled_set
from fgdd.selection.distilled_set import META
from fgdd.utils.device import resolve_device
from fgdd.utils.io import atomic_write_json, atomic_write_text
from fgdd.utils.seeding import derive_seed, seed_everything

log = logging.getLogger("fgdd")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

register_resolvers()  # conf/ interpolates ${accelerator:...}; must exist before Hydra resolves anything


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    log.info("stage %s ...", name)
    start = time.perf_counter()
    yield
    timings[f"time/{name}_s"] = round(time.perf_counter() - start, 3)
    log.info("stage %s done in %.1f s", name, timings[f"time/{name}_s"])


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """Record the config; a folder holding a different run's config is refused, never overwritten."""
    config_path = run_dir / "config.yaml"
    current = resolved_yaml(cfg)
    if config_path.exists():
        previous = config_path.read_text()
        if previous != current:
            diff = "".join(difflib.unified_diff(previous.splitlines(True), current.splitlines(True), "recorded", "now", n=0))
            raise FgddError(
                f"run folder {run_dir} holds a run with a different configuration; fgdd never overwrites a run.\n"
                f"Use another folder (hydra.run.dir=... or output_root=...). Differences:\n{diff}"
            )
        log.info("resuming run in %s", run_dir)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, current)
    atomic_write_json(run_dir / "run.json", run_record(cfg))


def obtain_teacher(cfg: DictConfig, dataset: Any, device: Any, trainer_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from fgdd.teacher import load_teacher, train_teacher  # lightning is imported only when a run starts

    arch = OmegaConf.to_container(cfg.teacher.arch.net, resolve=True)
    if cfg.teacher.checkpoint:
        return load_teacher(cfg.teacher.checkpoint, arch, dataset, device)
    recipe = OmegaConf.to_container(cfg.teacher.recipe, resolve=True)
    return train_teacher(
        arch, dataset, Path(cfg.cache_dir), **recipe, seed=cfg.seed, trainer_kwargs=trainer_kwargs, device=device
    )


def draw_figures(run_dir: Path) -> dict[str, Path]:
    from fgdd.report.figures import distilled_grid_figure, occupancy_figure

    figures = {"distilled_grid": distilled_grid_figure(run_dir / "distilled", run_dir / "figures" / "distilled_grid.png")}
    if (run_dir / "occupancy.json").exists():
        summary = json.loads((run_dir / "occupancy.json").read_text())
        figures["occupancy"] = occupancy_figure(summary, run_dir / "figures" / "occupancy.png")
    return figures


def log_figures(logger: Any, figures: dict[str, Path]) -> None:
    if logger is not None and hasattr(logger, "log_image"):  # W&B (and other image-capable loggers)
        for key, path in figures.items():
            logger.log_image(key=f"figures/{key}", images=[str(path)])


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """The whole pipeline; returns the metrics also written to ``<run_dir>/metrics.json``."""
    from fgdd.teacher import teacher_accuracy

    validate(cfg)
    run_dir = Path(run_dir if run_dir is not None else HydraConfig.get().runtime.output_dir).resolve()
    metrics_path = run_dir / "metrics.json"
    prepare_run_dir(cfg, run_dir)
    if metrics_path.exists():
        log.info("run already finished: %s", metrics_path)
        return json.loads(metrics_path.read_text())

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    timings: dict[str, float] = {}

    dataset = instantiate(cfg.dataset, _convert_="all")
    train_split, val_split = dataset.train(), dataset.val()
    log.info("dataset %s: %d classes, %d train / %d val images", dataset.name, len(dataset.classes),
             len(train_split), len(val_split))

    with stage("teacher", timings):
        teacher, teacher_meta = obtain_teacher(cfg, dataset, device, trainer_kwargs)
        teacher_top1 = teacher_accuracy(teacher, val_split, dataset.input_size, dataset.mean, dataset.std, device)
    log.info("teacher val top-1: %.4f", teacher_top1)
    if teacher_top1 < cfg.teacher.min_val_acc:
        raise TeacherTooWeakError(
            f"teacher val top-1 {teacher_top1:.4f} is below teacher.min_val_acc={cfg.teacher.min_val_acc}; a weak "
            "observer ranks patches badly. Train longer (teacher.recipe.epochs) or give a better teacher.checkpoint"
        )

    distilled_dir = run_dir / "distilled"
    with stage("select", timings):
        if (distilled_dir / META).exists():
            log.info("distilled set already written: %s", distilled_dir)
        else:
            selector = instantiate(cfg.selector, _convert_="all")
            selection = selector.select(
                train_split, teacher, ipc=cfg.ipc, seed=cfg.seed, input_size=dataset.input_size,
                mean=dataset.mean, std=dataset.std, device=device, dataset=dataset,
            )
            summary = selector.foreground_summary()
            if summary is not None:  # written before the set, so a resumed run still has it for its figure
                atomic_write_json(run_dir / "occupancy.json", summary)
            write_distilled_set(
                distilled_dir, selection, dataset.classes, ipc=cfg.ipc, factor=selector.factor,
                info={"dataset": dataset.name, "selector": selector.name, "input_size": dataset.input_size,
                      "seed": cfg.seed},
            )
    distilled = DistilledSet(distilled_dir, classes=dataset.classes)
    figures = draw_figures(run_dir)

    with stage("student", timings):
        # seeded here, not only at start: whether the teacher was trained in this process or loaded from the cache
        # must not change the student's initial weights
        seed_everything(derive_seed(cfg.seed, "student"))
        student = build_model(cfg.model.net, num_classes=len(dataset.classes), input_size=dataset.input_size)
        logger = instantiate(cfg.logger, save_dir=str(run_dir)) if cfg.logger is not None else None
        log_figures(logger, figures)
        evaluator = instantiate(cfg.evaluator, _convert_="all")
        results = evaluator.evaluate(
            distilled, val_split, student, teacher, lr=cfg.model.lr, ipc=cfg.ipc, num_classes=len(dataset.classes),
            factor=distilled.factor, input_size=dataset.input_size, mean=dataset.mean, std=dataset.std,
            seed=cfg.seed, trainer_kwargs=trainer_kwargs, logger=logger,
        )

    metrics: dict[str, float] = {
        "teacher/val_top1": teacher_top1,
        **results,
        "distilled/images": float(len(distilled)),
        "distilled/bytes": float(sum(p.stat().st_size for p, _ in distilled.samples)),
        **timings,
    }
    atomic_write_json(metrics_path, metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1))
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except FgddError as error:
        log.error("%s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
