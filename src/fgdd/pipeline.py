"""The stages of one run, shared by ``python -m fgdd.run`` and ``python -m fgdd.segment``: dataset, teacher,
teacher accuracy, selection, figures, student, metrics. ``run`` drives them inside one run folder
(fgdd.run_folder), writing ``failed.json`` on a failure."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fgdd.cache.distilled import DistilledSetCache, selection_key
from fgdd.config import build, build_dataset, resolved_yaml, stage_precisions, validate
from fgdd.errors import ConfigError, TeacherTooWeakError
from fgdd.models.checkpoint import build_model, weights_sha256
from fgdd.run_folder import (
    DATASET_RECORD,
    DISTILLED,
    DISTILLED_META,
    FIGURES,
    METRICS,
    OCCUPANCY,
    RESUME,
    SELECTION_COST,
    STUDENT_CHECKPOINT,
    archive_failure,
    close_handlers,
    detach_run_log,
    prepare_run_dir,
    record_failure,
    run_record,
)
from fgdd.selection import DistilledSet, RandomRealSelector, write_distilled_set
from fgdd.selection.base import ImageNeed, Selector
from fgdd.tracking import abort, finish, log_distilled_set, log_figures, make_logger
from fgdd.utils.device import resolve_device
from fgdd.utils.distributed import is_main_process, wait_for
from fgdd.utils.io import atomic_write_json
from fgdd.utils.seeding import STUDENT, derive_seed, seeded

log = logging.getLogger("fgdd")


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
    metrics_path = run_dir / METRICS
    held = detach_run_log(run_dir)  # until this attempt is known to run, the folder's log stays as it is
    try:
        attempt = prepare_run_dir(resolved_yaml(cfg), lambda: record_of(cfg), run_dir)
    except BaseException:  # refused: nothing of it is written into the folder
        close_handlers(held)
        raise
    if metrics_path.exists():
        close_handlers(held)
        log.info("run already finished: %s", metrics_path)
        return json.loads(metrics_path.read_text())
    for handler in held:
        logging.getLogger().addHandler(handler)
    log.info("run folder (%s): %s", attempt, run_dir)
    main_process = is_main_process()  # False in the other ranks of a DDP run: they write nothing
    if main_process and (archived := archive_failure(run_dir)):
        log.info("an earlier attempt failed (kept as %s); trying again", archived.name)

    stages, logger = Stages(), None
    try:
        logger = make_logger(None if cfg.logger is None else plain(cfg.logger), run_dir, name=run_dir.name,
                             job_type=cfg.selector.name, tags=[cfg.dataset.name, cfg.selector.name, f"ipc{cfg.ipc}"],
                             sweep_group=cfg.sweep_name if in_multirun() else None, hyperparams=plain(cfg))
        metrics = run_stages(cfg, run_dir, stages, logger)
        if main_process:
            stages.current = "metrics"
            atomic_write_json(metrics_path, metrics)
            remove_resume_state(run_dir)
    except BaseException as error:
        if main_process:
            record_failure(run_dir, stages.current, error)
        abort(logger)
        raise
    finish(logger, metrics)
    log.info("metrics: %s", json.dumps(metrics, indent=1))
    return metrics


def remove_resume_state(run_dir: Path) -> None:
    """The student's checkpoints served a rerun of a killed run only; once metrics.json is written nothing reads
    them (a finished run's rerun returns its metrics), and they hold a student's weights and optimizer each."""
    folder = run_dir / RESUME
    if folder.exists():
        shutil.rmtree(folder)
        log.info("removed the student's resume checkpoints (%s): the run finished", folder)


def record_of(cfg: DictConfig) -> dict[str, Any]:
    """run.json's fields for this config (fgdd.run_folder.run_record)."""
    from fgdd.utils.device import pick_device

    device = pick_device(cfg.device)
    return run_record(cfg.seed, device, stage_precisions(cfg, device))


def run_stages(cfg: DictConfig, run_dir: Path, stage: Stages, logger: Any) -> dict[str, float]:
    # no global reseed here: each stage seeds itself from cfg.seed (fgdd.utils.seeding says how)
    device = resolve_device(cfg.device)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)

    dataset = build_dataset(cfg.dataset)
    train_split, val_split = dataset.train(), dataset.val()
    log.info("dataset %s: %d classes, %d train / %d val images", dataset.name, len(dataset.classes),
             len(train_split), len(val_split))
    # each config group is built once here and its object handed down (constructors load nothing: the selector is
    # asked what it needs before the teacher exists)
    selector = build(cfg.selector)
    check_enough_images(selector, cfg.ipc, train_split, list(dataset.classes),
                        limit_per_class=(cfg.dataset.get("limit_per_class") or {}).get("train"))
    spec = dataset.spec
    if is_main_process():
        atomic_write_json(run_dir / DATASET_RECORD, dataset.record())

    with stage("teacher"):
        source = build_teacher_source(cfg.teacher)
        teacher, _ = source.obtain(dataset, device, cache_dir=cfg.cache_dir, trainer_kwargs=trainer_kwargs)
        from fgdd.evaluation.eval_images import decode_eval_images  # imports lightning: only when a run starts

        # decoded once for the whole run (and cached across runs): the teacher's accuracy and every student validation
        val_images = decode_eval_images(val_split, spec.input_size, cache_dir=cfg.cache_dir)
        teacher_top1 = cached_teacher_accuracy(cfg, teacher, val_split, dataset, device, val_images)
    log.info("teacher val top-1: %.4f", teacher_top1)
    if teacher_top1 < source.min_val_acc:
        raise TeacherTooWeakError(
            f"teacher val top-1 {teacher_top1:.4f} is below teacher.min_val_acc={source.min_val_acc}; a weak "
            "observer ranks patches badly. Train longer (teacher.recipe.epochs) or give a better teacher.checkpoint"
        )

    with stage("select"):
        cache = DistilledSetCache(cfg.cache_dir, distilled_key(cfg, device.type, weights_sha256(teacher), source))
        select(selector, cache, run_dir, dataset, teacher, device, ipc=cfg.ipc, seed=cfg.seed)
    distilled = DistilledSet(run_dir / DISTILLED, classes=dataset.classes)
    if is_main_process():
        figures = draw_figures(run_dir, dataset, teacher, device, segmenter=getattr(selector, "segmenter", None),
                               samples_per_class=cfg.figures.foreground_samples)
        log_figures(logger, figures)
        log_distilled_set(logger, distilled.root, name=f"distilled-{run_dir.name}", metadata={
            "dataset": dataset.name, "selector": selector.name, "ipc": cfg.ipc, "seed": cfg.seed})

    with stage("student"):
        # its own seed: whether the teacher was trained in this process or loaded from the cache must not change the
        # student's initial weights (the evaluator then reseeds the global RNGs for the training)
        with seeded(derive_seed(cfg.seed, STUDENT)):
            student = build_model(plain(cfg.model.net), num_classes=spec.num_classes, input_size=spec.input_size)
        evaluator = build_evaluator(cfg.evaluator, dataset)
        results = evaluator.evaluate(distilled, val_images, student, teacher, lr=cfg.model.lr, spec=spec, seed=cfg.seed,
                                     trainer_kwargs=trainer_kwargs, logger=logger,
                                     checkpoint=run_dir / RESUME / STUDENT_CHECKPOINT)

    selection_cost = json.loads((run_dir / SELECTION_COST).read_text()) if (run_dir / SELECTION_COST).exists() else {}
    distilled_bytes = float(sum(p.stat().st_size for p, _ in distilled.samples))
    return {
        "teacher/val_top1": teacher_top1,
        **results,
        "distilled/images": float(len(distilled)),
        "data/val_images": float(len(val_split)),  # what the accuracies are measured on
        "data/val_unreadable": float(len(val_split.dropped)),  # unreadable val images left out (dataset.json)
        "cost/distill_s": float(selection_cost.get("select_s", stage.timings["time/select_s"])),
        "cost/distilled_bytes": distilled_bytes,
        "cost/soft_label_bytes": float(results.get("cost/soft_label_bytes", 0.0)),
        **stage.timings,
    }


def plain(node: Any) -> Any:
    """A config node as plain values (interpolations resolved), as the layers below the pipeline take them."""
    return OmegaConf.to_container(node, resolve=True)


def distilled_key(cfg: DictConfig, device_type: str, teacher_weights_sha256: str | None = None,
                  teacher: Any = None) -> dict[str, Any]:
    """The key of this run's entry in the cache of distilled sets (fgdd.cache.distilled.selection_key); ``teacher``:
    the run's teacher object (its key() names it), built from ``cfg.teacher`` when not given."""
    teacher = teacher if teacher is not None else build_teacher_source(cfg.teacher)
    return selection_key(dataset=plain(cfg.dataset), teacher=teacher.key(), selector=plain(cfg.selector),
                         ipc=cfg.ipc, seed=cfg.seed, device_type=device_type,
                         teacher_weights_sha256=teacher_weights_sha256)


def check_enough_images(selector: Selector, ipc: int, train_split: Any, classes: list[str],
                        limit_per_class: int | None = None) -> None:
    """Before any stage runs: every class must have the images the selector needs for ipc (its mosaic cells, drawn
    from at most mipc images). ``limit_per_class``: dataset.limit_per_class.train, named in the remedies."""
    problem = ipc_shortfall(selector, ipc, Counter(train_split.targets), classes, limit_per_class=limit_per_class,
                            before_limit=train_split.before_limit)
    if problem:
        raise ConfigError(problem)


def ipc_shortfall(selector: Selector, ipc: int, counts: Mapping[int, int], classes: Sequence[str],
                  limit_per_class: int | None = None, before_limit: Mapping[int, int] | None = None) -> str | None:
    """Why the train images per class (``counts``: label -> images) cannot fill ipc with this selector, which classes
    are short and by how much, and only the remedies that would work; None when they can. ``limit_per_class``:
    dataset.limit_per_class.train where set, ``before_limit``: the images per class listed before it cut them.
    ``fgdd.check`` asks the same question."""
    need = selector.images_needed(ipc)
    have = {label: counts.get(label, 0) for label in range(len(classes))}
    short = [label for label, n in have.items() if capped(n, need.pool) < need.images]
    if not short:
        return None
    listed = ", ".join(f"{classes[label]!r} {capped(have[label], need.pool)} "
                       f"({need.images - capped(have[label], need.pool)} short)" for label in short[:10])
    available = f"min(images, selector.{need.pool_setting}={need.pool})" if need.pool else "images"
    remedies = [*fewer_images(selector, ipc, have), *raised_settings(need, short, have, limit_per_class, before_limit)]
    return (
        f"ipc={ipc} needs {need.images} images per class ({selector.name}: {need.rule}), but {len(short)} of "
        f"{len(classes)} classes {'has' if len(short) == 1 else 'have'} fewer ({available}): {listed}"
        f"{' ...' if len(short) > 10 else ''}. What works: "
        + "; or ".join(remedies)
    )


def capped(images: int, pool: int | None) -> int:
    return min(images, pool) if pool is not None else images


def fewer_images(selector: Selector, ipc: int, have: Mapping[int, int]) -> list[str]:
    """A lower ipc that every class fills, and random_real (ipc whole images, from any of a class's images)."""
    lower = most_ipc(selector, ipc - 1, have)
    remedies = [f"`ipc={lower}` (the most every class fills)"] if lower is not None else []
    whole = most_ipc(RandomRealSelector(), ipc, have)
    if not isinstance(selector, RandomRealSelector) and whole is not None:
        need = selector.images_needed(ipc)  # its pool is a setting random_real lacks: a command line setting it fails
        lacks = f"; it reads no selector.{need.pool_setting}" if need.pool is not None else ""
        remedies.append(f"`selector=random_real{'' if whole == ipc else f' ipc={whole}'}` (whole images, no "
                        f"mosaic: {whole} per class{lacks})")
    return remedies


def most_ipc(selector: Selector, up_to: int, have: Mapping[int, int]) -> int | None:
    """The largest ipc from 1 to ``up_to`` whose images every class has; None if not even 1."""
    fewest = min(capped(n, selector.images_needed(1).pool) for n in have.values())
    return next((k for k in range(up_to, 0, -1) if selector.images_needed(k).images <= fewest), None)


def raised_settings(need: ImageNeed, short: Sequence[int], have: Mapping[int, int], limit: int | None,
                    before_limit: Mapping[int, int] | None) -> list[str]:
    """The settings that cap a short class's images (selector.mipc, dataset.limit_per_class.train), raised to what
    ipc needs: each alone where that suffices, else both together; or more images where no setting is the cause."""
    raise_pool = f"`selector.{need.pool_setting}={need.images}` (now {need.pool})"
    raise_limit = f"`dataset.limit_per_class.train={need.images}` (now {limit}; debug=fast sets it)"
    pool_caps = need.pool is not None and need.pool < need.images
    limit_caps = limit is not None and before_limit is not None and limit < need.images

    def fills(pool_raised: bool, limit_raised: bool) -> bool:
        images = {label: before_limit[label] if limit_raised and before_limit else have[label] for label in short}
        return all(capped(n, None if pool_raised else need.pool) >= need.images for n in images.values())

    alone = [raise_pool] if pool_caps and fills(pool_raised=True, limit_raised=False) else []
    alone += [raise_limit] if limit_caps and fills(pool_raised=False, limit_raised=True) else []
    if alone:
        return alone
    if pool_caps and limit_caps and fills(True, True):
        return [f"{raise_pool} with {raise_limit}"]
    if not pool_caps and not limit_caps:  # the classes themselves hold too few images
        return ["add images to these classes"]
    return []


def build_teacher_source(node: DictConfig) -> Any:
    # conf/teacher/*.yaml name the plug-in (fgdd.teacher.TeacherTrainer, TeacherFromCheckpoint); not recursive, so
    # teacher.arch stays a config that the teacher builds itself (lightning is imported only when a run starts)
    return instantiate(node, _recursive_=False, _convert_="all")


def build_evaluator(node: DictConfig, dataset: Any) -> Any:
    """The evaluator of conf/evaluator; one that reads the dataset (holdout, full_real, an lr search's holdout: their
    ``dataset: ${dataset}``) is given the run's dataset object in its place, so a run builds one dataset, not two."""
    if node.get("dataset") is None:  # no such setting, or null (ddranking_rded: no holdout)
        return instantiate(node, _convert_="all")
    return instantiate(node, _convert_="all", dataset=dataset)


def obtain_teacher(cfg: DictConfig, dataset: Any, device: Any, trainer_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """The run's teacher outside a run (fgdd.segment, fgdd.export): its source built from ``cfg.teacher``."""
    return build_teacher_source(cfg.teacher).obtain(dataset, device, cache_dir=cfg.cache_dir,
                                                    trainer_kwargs=trainer_kwargs)


def cached_teacher_accuracy(
    cfg: DictConfig, teacher: Any, val_split: Any, dataset: Any, device: Any, val_images: Any = None
) -> float:
    """The teacher's val top-1, measured by the first run that uses this teacher and read back by the others
    (``val_images``: the split already decoded, fgdd.evaluation.eval_images; else it is decoded to measure)."""
    from fgdd.cache.teacher_accuracy import TeacherAccuracyCache, accuracy_key
    from fgdd.teacher import teacher_accuracy

    spec = dataset.spec
    cache = TeacherAccuracyCache(cfg.cache_dir, accuracy_key(teacher, val_split, spec.input_size, spec.mean, spec.std,
                                                             device))
    cached = cache.get()
    if cached is not None:
        log.info("teacher val top-1 read from %s", cache.path)
        return cached
    measured = teacher_accuracy(teacher, val_images if val_images is not None else val_split, spec, device)
    if is_main_process():
        cache.put(measured)
    return measured


def select(selector: Selector, cache: DistilledSetCache, run_dir: Path, dataset: Any, teacher: Any, device: Any, *,
           ipc: int, seed: int) -> None:
    """Write ``run_dir/distilled`` (+ occupancy.json): kept if already there, copied from the cache of distilled
    sets if an equal run made it (``cache``: its entry for this run), else selected here and offered to the cache."""
    distilled_dir = run_dir / DISTILLED
    if (distilled_dir / DISTILLED_META).exists():
        log.info("distilled set already written: %s", distilled_dir)
        return
    if not is_main_process():  # DDP: rank 0 selects; the others train the student on its set
        wait_for(distilled_dir / DISTILLED_META, "the distilled set")
        return
    if cache.has():
        cache.copy_to(run_dir)
        cost = json.loads((cache.folder / SELECTION_COST).read_text()) if (cache.folder / SELECTION_COST).exists() else {}
        atomic_write_json(run_dir / SELECTION_COST, {**cost, "reused_from": str(cache.folder)})
        return
    start = time.perf_counter()
    selection = selector.select(dataset.train(), teacher, ipc=ipc, seed=seed, spec=dataset.spec, device=device,
                                dataset=dataset)
    summary = selector.foreground_summary()
    if summary is not None:  # written before the set, so a resumed run still has it for its figure
        atomic_write_json(run_dir / OCCUPANCY, summary)
    write_distilled_set(
        distilled_dir, selection, dataset.classes, ipc=ipc, factor=selector.factor,
        image_format=getattr(selector, "image_format", "jpg"),  # selector=folder keeps external pixels: png
        info={"dataset": dataset.name, "selector": selector.name, "input_size": dataset.input_size, "seed": seed},
    )
    cost = {"select_s": round(time.perf_counter() - start, 3), "device": str(device)}
    atomic_write_json(run_dir / SELECTION_COST, cost)
    try:
        cache.store_from(run_dir)
        atomic_write_json(cache.folder / SELECTION_COST, cost)
    except OSError as error:  # the run's own copy is complete; a cache that cannot be written only costs time later
        log.warning("could not store the distilled set in the cache %s: %s", cache.folder, error)


def draw_figures(run_dir: Path, dataset: Any, teacher: Any, device: Any, *, segmenter: Any,
                 samples_per_class: int) -> dict[str, Path]:
    """``segmenter``: the selector's own (None for a selector without one); ``samples_per_class``: images per
    class in figures/foreground_samples.png (figures.foreground_samples)."""
    from fgdd.foreground.base import SegmentationContext
    from fgdd.report.figures import (
        distilled_grid_figure,
        foreground_samples,
        foreground_samples_figure,
        occupancy_figure,
    )

    figures = {"distilled_grid": distilled_grid_figure(run_dir / DISTILLED, run_dir / FIGURES / "distilled_grid.png")}
    if (run_dir / OCCUPANCY).exists():
        summary = json.loads((run_dir / OCCUPANCY).read_text())
        figures["occupancy"] = occupancy_figure(summary, run_dir / FIGURES / "occupancy.png")
    if (run_dir / OCCUPANCY).exists() and segmenter is not None and samples_per_class > 0:
        # a few kept images per class segmented again by the run's segmenter (masks are not stored)
        segmenter.setup(SegmentationContext(observer=teacher, dataset=dataset, device=device))
        samples = foreground_samples(run_dir / DISTILLED, dataset.train(), segmenter, dataset.class_names,
                                     per_class=samples_per_class)
        figures["foreground_samples"] = foreground_samples_figure(samples, run_dir / FIGURES / "foreground_samples.png")
    return figures
