"""``python -m fgdd.run``: teacher -> selection -> student evaluation, one self-describing run folder."""

from __future__ import annotations

import difflib
import json
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fgdd.config import register_resolvers, validate
from fgdd.distilled_cache import DistilledSetCache, selection_key
from fgdd.errors import ConfigError, FgddError, TeacherTooWeakError
from fgdd.failures import archive_failure, record_failure
from fgdd.models.checkpoint import build_model
from fgdd.provenance import resolved_yaml, run_record
from fgdd.selection import DistilledSet, write_distilled_set
from fgdd.selection.distilled_set import META
from fgdd.tracking import abort, finish, log_distilled_set, log_figures, make_logger
from fgdd.utils.device import resolve_device
from fgdd.utils.distributed import is_main_process, wait_for
from fgdd.utils.io import atomic_write_json, atomic_write_text
from fgdd.utils.seeding import derive_seed, seed_everything

log = logging.getLogger("fgdd")
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
SELECTION_COST = "selection.json"  # seconds the selection took when the set was made (kept when it is reused)

register_resolvers()  # conf/ interpolates ${accelerator:...}; must exist before Hydra resolves anything


class Stages:
    """Times each stage and remembers which one is running, for ``failed.json``."""

    def __init__(self) -> None:
        self.current = "setup"
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("stage %s ...", name)
        self.current = name
        start = time.perf_counter()
        yield
        self.timings[f"time/{name}_s"] = round(time.perf_counter() - start, 3)
        log.info("stage %s done in %.1f s", name, self.timings[f"time/{name}_s"])


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """Record the config; a folder holding a different run's config is refused, never overwritten.

    Keys only the current config has (settings added by a newer fgdd, at their defaults) do not block a resume;
    a changed or removed value does.
    """
    config_path = run_dir / "config.yaml"
    current = resolved_yaml(cfg)
    if not is_main_process():  # DDP: rank 0 records the run
        wait_for(config_path, "the run's config.yaml")
    if config_path.exists():
        previous = config_path.read_text()
        if previous != current:
            changed, added = config_differences(yaml.safe_load(previous), yaml.safe_load(current))
            if changed:
                diff = "".join(difflib.unified_diff(previous.splitlines(True), current.splitlines(True), "recorded",
                                                    "now", n=0))
                raise FgddError(
                    f"run folder {run_dir} holds a run with a different configuration ({', '.join(changed)}); fgdd "
                    f"never overwrites a run.\nUse another folder (hydra.run.dir=... or output_root=...). "
                    f"Differences:\n{diff}"
                )
            log.warning("resuming a run recorded before these settings existed (kept at their defaults): %s",
                        ", ".join(added))
        log.info("resuming run in %s", run_dir)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, current)
    atomic_write_json(run_dir / "run.json", run_record(cfg))


def config_differences(recorded: Any, current: Any, prefix: str = "") -> tuple[list[str], list[str]]:
    """(keys whose value changed or disappeared, keys only ``current`` has), as dotted paths."""
    if not (isinstance(recorded, dict) and isinstance(current, dict)):
        return ([prefix or "<root>"] if recorded != current else []), []
    changed, added = [], []
    for key in sorted(set(recorded) | set(current), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in current:
            changed.append(path)
        elif key not in recorded:
            added.append(path)
        else:
            more_changed, more_added = config_differences(recorded[key], current[key], path)
            changed += more_changed
            added += more_added
    return changed, added


def check_enough_images(cfg: DictConfig, train_split: Any, classes: list[str]) -> None:
    """Before any stage runs: every class must have the images its ipc needs (mosaic cells, within mipc)."""
    counts = Counter(train_split.targets)
    per_image_selector = "mipc" in cfg.selector  # rded, fgdd: one patch per drawn image, ipc * factor^2 cells
    needed = cfg.ipc * cfg.selector.factor**2 if per_image_selector else cfg.ipc
    short = {}
    for label, class_id in enumerate(classes):
        available = min(counts.get(label, 0), cfg.selector.mipc) if per_image_selector else counts.get(label, 0)
        if available < needed:
            short[class_id] = available
    if short:
        pool = f"min(images, selector.mipc={cfg.selector.mipc})" if per_image_selector else "images"
        raise ConfigError(
            f"ipc={cfg.ipc} needs {needed} images per class ({cfg.selector.name}), but these classes have fewer "
            f"({pool}): {dict(list(short.items())[:10])}{' ...' if len(short) > 10 else ''}; lower ipc"
            + (" or raise selector.mipc" if per_image_selector else "")
        )


def obtain_teacher(cfg: DictConfig, dataset: Any, device: Any, trainer_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from fgdd.teacher import load_teacher, train_teacher  # lightning is imported only when a run starts

    arch = OmegaConf.to_container(cfg.teacher.arch.net, resolve=True)
    if cfg.teacher.checkpoint:
        return load_teacher(cfg.teacher.checkpoint, arch, dataset, device)
    recipe = OmegaConf.to_container(cfg.teacher.recipe, resolve=True)  # its seed is the teacher's own, not the run's
    return train_teacher(arch, dataset, Path(cfg.cache_dir), **recipe, trainer_kwargs=trainer_kwargs, device=device)


def draw_figures(run_dir: Path, cfg: DictConfig, dataset: Any, teacher: Any, device: Any) -> dict[str, Path]:
    from fgdd.foreground.base import SegmentationContext
    from fgdd.report.figures import (distilled_grid_figure, foreground_samples, foreground_samples_figure,
                                     occupancy_figure)

    figures = {"distilled_grid": distilled_grid_figure(run_dir / "distilled", run_dir / "figures" / "distilled_grid.png")}
    if (run_dir / "occupancy.json").exists():
        summary = json.loads((run_dir / "occupancy.json").read_text())
        figures["occupancy"] = occupancy_figure(summary, run_dir / "figures" / "occupancy.png")
    if (run_dir / "occupancy.json").exists() and cfg.figures.foreground_samples > 0:
        # a few kept images per class segmented again by the run's segmenter (masks are not stored)
        segmenter = instantiate(cfg.selector.segmenter, _convert_="all")
        segmenter.setup(SegmentationContext(observer=teacher, dataset=dataset, device=device))
        samples = foreground_samples(run_dir / "distilled", dataset.train(), segmenter, dataset.class_names,
                                     per_class=cfg.figures.foreground_samples)
        figures["foreground_samples"] = foreground_samples_figure(samples, run_dir / "figures" / "foreground_samples.png")
    return figures


def select(cfg: DictConfig, run_dir: Path, dataset: Any, teacher: Any, device: Any) -> None:
    """Write ``run_dir/distilled`` (+ occupancy.json): kept if already there, copied from the cache of distilled
    sets if an equal run made it, else selected here and offered to the cache."""
    distilled_dir = run_dir / "distilled"
    if (distilled_dir / META).exists():
        log.info("distilled set already written: %s", distilled_dir)
        return
    if not is_main_process():  # DDP: rank 0 selects; the others train the student on its set
        wait_for(distilled_dir / META, "the distilled set")
        return
    cache = DistilledSetCache(cfg.cache_dir, selection_key(cfg, device.type))
    if cache.has():
        cache.copy_to(run_dir)
        cost = json.loads((cache.folder / SELECTION_COST).read_text()) if (cache.folder / SELECTION_COST).exists() else {}
        atomic_write_json(run_dir / SELECTION_COST, {**cost, "reused_from": str(cache.folder)})
        return
    start = time.perf_counter()
    selector = instantiate(cfg.selector, _convert_="all")
    selection = selector.select(
        dataset.train(), teacher, ipc=cfg.ipc, seed=cfg.seed, input_size=dataset.input_size,
        mean=dataset.mean, std=dataset.std, device=device, dataset=dataset,
    )
    summary = selector.foreground_summary()
    if summary is not None:  # written before the set, so a resumed run still has it for its figure
        atomic_write_json(run_dir / "occupancy.json", summary)
    write_distilled_set(
        distilled_dir, selection, dataset.classes, ipc=cfg.ipc, factor=selector.factor,
        info={"dataset": dataset.name, "selector": selector.name, "input_size": dataset.input_size, "seed": cfg.seed},
    )
    cost = {"select_s": round(time.perf_counter() - start, 3), "device": str(device)}
    atomic_write_json(run_dir / SELECTION_COST, cost)
    try:
        cache.store_from(run_dir)
        atomic_write_json(cache.folder / SELECTION_COST, cost)
    except OSError as error:  # the run's own copy is complete; a cache that cannot be written only costs time later
        log.warning("could not store the distilled set in the cache %s: %s", cache.folder, error)


def in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # called outside a Hydra app (tests, notebooks)
        return False


def run(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """The whole pipeline; returns the metrics also written to ``<run_dir>/metrics.json``.

    A failure writes ``failed.json`` (stage, error) into the run folder and re-raises.
    """
    validate(cfg)
    run_dir = Path(run_dir if run_dir is not None else HydraConfig.get().runtime.output_dir).resolve()
    prepare_run_dir(cfg, run_dir)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        log.info("run already finished: %s", metrics_path)
        return json.loads(metrics_path.read_text())
    main_process = is_main_process()  # False in the other ranks of a DDP run: they write nothing
    if main_process and (archived := archive_failure(run_dir)):
        log.info("an earlier attempt failed (kept as %s); trying again", archived.name)

    stages, logger = Stages(), None
    try:
        logger = make_logger(cfg, run_dir, cfg.sweep_name if in_multirun() else None)
        metrics = pipeline(cfg, run_dir, stages, logger)
        if main_process:
            stages.current = "metrics"
            atomic_write_json(metrics_path, metrics)
    except BaseException as error:
        if main_process:
            record_failure(run_dir, stages.current, error)
        abort(logger)
        raise
    finish(logger, metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1))
    return metrics


def cached_teacher_accuracy(cfg: DictConfig, teacher: Any, val_split: Any, dataset: Any, device: Any) -> float:
    """The teacher's val top-1, measured by the first run that uses this teacher and read back by the others."""
    from fgdd.accuracy_cache import TeacherAccuracyCache, accuracy_key
    from fgdd.teacher import teacher_accuracy

    cache = TeacherAccuracyCache(cfg.cache_dir, accuracy_key(teacher, val_split, dataset.input_size, dataset.mean,
                                                             dataset.std, device))
    cached = cache.get()
    if cached is not None:
        log.info("teacher val top-1 read from %s", cache.path)
        return cached
    measured = teacher_accuracy(teacher, val_split, dataset.input_size, dataset.mean, dataset.std, device)
    if is_main_process():
        cache.put(measured)
    return measured


def pipeline(cfg: DictConfig, run_dir: Path, stage: Stages, logger: Any) -> dict[str, float]:
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)

    dataset = instantiate(cfg.dataset, _convert_="all")
    train_split, val_split = dataset.train(), dataset.val()
    log.info("dataset %s: %d classes, %d train / %d val images", dataset.name, len(dataset.classes),
             len(train_split), len(val_split))
    check_enough_images(cfg, train_split, list(dataset.classes))

    with stage("teacher"):
        teacher, _ = obtain_teacher(cfg, dataset, device, trainer_kwargs)
        teacher_top1 = cached_teacher_accuracy(cfg, teacher, val_split, dataset, device)
    log.info("teacher val top-1: %.4f", teacher_top1)
    if teacher_top1 < cfg.teacher.min_val_acc:
        raise TeacherTooWeakError(
            f"teacher val top-1 {teacher_top1:.4f} is below teacher.min_val_acc={cfg.teacher.min_val_acc}; a weak "
            "observer ranks patches badly. Train longer (teacher.recipe.epochs) or give a better teacher.checkpoint"
        )

    with stage("select"):
        select(cfg, run_dir, dataset, teacher, device)
    distilled = DistilledSet(run_dir / "distilled", classes=dataset.classes)
    if is_main_process():
        figures = draw_figures(run_dir, cfg, dataset, teacher, device)
        log_figures(logger, figures)
        log_distilled_set(logger, distilled.root, name=f"distilled-{run_dir.name}", metadata={
            "dataset": dataset.name, "selector": cfg.selector.name, "ipc": cfg.ipc, "seed": cfg.seed})

    with stage("student"):
        # seeded here, not only at start: whether the teacher was trained in this process or loaded from the cache
        # must not change the student's initial weights
        seed_everything(derive_seed(cfg.seed, "student"))
        student = build_model(cfg.model.net, num_classes=len(dataset.classes), input_size=dataset.input_size)
        evaluator = instantiate(cfg.evaluator, _convert_="all")
        results = evaluator.evaluate(
            distilled, val_split, student, teacher, lr=cfg.model.lr, ipc=cfg.ipc, num_classes=len(dataset.classes),
            factor=distilled.factor, input_size=dataset.input_size, mean=dataset.mean, std=dataset.std,
            seed=cfg.seed, trainer_kwargs=trainer_kwargs, logger=logger,
        )

    selection_cost = json.loads((run_dir / SELECTION_COST).read_text()) if (run_dir / SELECTION_COST).exists() else {}
    distilled_bytes = float(sum(p.stat().st_size for p, _ in distilled.samples))
    return {
        "teacher/val_top1": teacher_top1,
        **results,
        "distilled/images": float(len(distilled)),
        "cost/distill_s": float(selection_cost.get("select_s", stage.timings["time/select_s"])),
        "cost/distilled_bytes": distilled_bytes,
        "cost/soft_label_bytes": float(results.get("cost/soft_label_bytes", 0.0)),
        **stage.timings,
    }


def exit_on_sigterm(signum: int, frame: Any) -> None:
    # Lightning turns SIGTERM into SystemExit() (status 0), so a scheduler would count a killed run as done;
    # raised as an error, it unwinds like one (failed.json, temporary files removed) and exits with 128 + 15
    raise SystemExit(128 + signum)


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> None:
    """A Hydra entry point's body: an FgddError is one logged message and exit status 2 (in a multirun, Hydra
    marks the job failed, runs the rest of the sweep and exits non-zero at the end); SIGTERM exits non-zero."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)  # Lightning keeps it, beside its own handler, while it trains
    try:
        task(cfg)
    except FgddError as error:
        log.error("%s", error)
        if in_multirun():
            raise
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def main(cfg: DictConfig) -> None:
    run_task(run, cfg)


if __name__ == "__main__":
    main()
