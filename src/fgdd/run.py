"""``python -m fgdd.run``: teacher -> selection -> student evaluation, one self-describing run folder."""

from __future__ import annotations

import difflib
import json
import logging
import os
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
from fgdd.data.base import build_dataset
from fgdd.distilled_cache import DistilledSetCache, selection_key
from fgdd.errors import ConfigError, FgddError, TeacherTooWeakError
from fgdd.failures import FAILED, archive_failure, record_failure
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
DATASET_RECORD = "dataset.json"  # what the run read: images per split, classes left aside, unreadable val images
# What a finished stage leaves in a run folder: an attempt that failed before any of these exists holds no result,
# so a retry with other settings may set it aside (a teacher lives in the cache, keyed by its own settings)
STAGE_OUTPUTS = ("distilled", "occupancy.json", SELECTION_COST, "figures", "metrics.json")
# The records of one attempt, set aside together as <stem>.<n><suffix> when a retry replaces them
ATTEMPT_RECORDS = ("config.yaml", "run.json", FAILED, DATASET_RECORD)
# Settings whose default comes from the environment: the run folder's name (a hash of the command line) does not
# include them, so a refusal names the variable and the override that gets past it
ENV_SETTINGS = {"data_root": "FGDD_DATA_DIR", "cache_dir": "FGDD_CACHE_DIR"}
CONFIG_WAIT_S = 600.0  # DDP: how long the other ranks wait for rank 0 to record a retried run's config

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


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> str:
    """Record the config; a folder holding a different run's config is refused, never overwritten. Returns what
    the folder holds for this attempt: "new", "resumed" or "retried".

    Keys only the current config has (settings added by a newer fgdd, at their defaults) do not block a resume;
    a changed or removed value does, unless the recorded attempt failed before any stage finished
    (``retryable``): its records are then set aside (``config.<n>.yaml``, ``failed.<n>.json``, ...) and this
    attempt starts afresh in the same folder.
    """
    config_path = run_dir / "config.yaml"
    current = resolved_yaml(cfg)
    if not is_main_process():  # DDP: rank 0 records the run (or sets a failed attempt aside first)
        wait_for(config_path, "the run's config.yaml")
        _wait_for_config(config_path, current)
    if config_path.exists():
        previous = config_path.read_text()
        if previous != current:
            changed, added = config_differences(yaml.safe_load(previous), yaml.safe_load(current))
            if changed:
                if is_main_process() and retryable(run_dir):
                    n = set_attempt_aside(run_dir)
                    log.warning("the attempt recorded in %s failed before any stage finished; kept as "
                                "config.%d.yaml and failed.%d.json, and tried again with these settings (changed: "
                                "%s)", run_dir, n, n, ", ".join(changed))
                    _record(cfg, run_dir, current)
                    return "retried"
                raise FgddError(refusal(run_dir, previous, current, changed))
            log.warning("resuming a run recorded before these settings existed (kept at their defaults): %s",
                        ", ".join(added))
        return "resumed"
    _record(cfg, run_dir, current)
    return "new"


def _record(cfg: DictConfig, run_dir: Path, resolved: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", resolved)
    atomic_write_json(run_dir / "run.json", run_record(cfg))


def _wait_for_config(config_path: Path, current: str, timeout_s: float = CONFIG_WAIT_S) -> None:
    # rank 0 may be setting a failed attempt aside: give it time to record this config before comparing
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if config_path.exists() and config_path.read_text() == current:
            return
        time.sleep(2.0)


def retryable(run_dir: Path) -> bool:
    """The recorded attempt ended in a failure (failed.json) before any stage left its output here."""
    return (run_dir / FAILED).exists() and not any((run_dir / name).exists() for name in STAGE_OUTPUTS)


def numbered(name: str, n: int) -> str:
    stem, dot, suffix = name.partition(".")
    return f"{stem}.{n}.{suffix}" if dot else f"{name}.{n}"


def set_attempt_aside(run_dir: Path) -> int:
    """Rename the recorded attempt's files (config.yaml, run.json, failed.json, dataset.json) to
    ``<stem>.<n>.<ext>``, one n free for all of them; nothing is deleted."""
    n = 1
    while any((run_dir / numbered(name, n)).exists() for name in ATTEMPT_RECORDS):
        n += 1
    for name in ATTEMPT_RECORDS:
        if (run_dir / name).exists():
            (run_dir / name).rename(run_dir / numbered(name, n))
    return n


def refusal(run_dir: Path, previous: str, current: str, changed: list[str]) -> str:
    diff = "".join(difflib.unified_diff(previous.splitlines(True), current.splitlines(True), "recorded", "now", n=0))
    if any((run_dir / name).exists() for name in STAGE_OUTPUTS):
        why = " whose attempt left results (a finished stage)"
    else:
        why = "" if (run_dir / FAILED).exists() else " with no recorded failure (it may still be running)"
    recorded, now = yaml.safe_load(previous), yaml.safe_load(current)
    hints = []
    for key, variable in ENV_SETTINGS.items():
        value = os.environ.get(variable)
        if key in changed and value is not None and str(now.get(key)) == value:
            hints.append(
                f"{key}={value} comes from ${variable}, which the run folder's name does not include (the recorded "
                f"run has {key}={recorded.get(key)}). To run with {value}, give it on the command line, "
                f"`{key}={value}`: command-line settings name the folder, so the run gets a folder of its own. To "
                f"resume the recorded run, set {variable}={recorded.get(key)} again."
            )
    return (
        f"run folder {run_dir} holds a run with a different configuration ({', '.join(changed)}){why}; fgdd never "
        "overwrites a run.\n"
        + "".join(f"{hint}\n" for hint in hints)
        + f"Use another folder (hydra.run.dir=... or output_root=...). Differences:\n{diff}"
    )


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
    problem = ipc_shortfall(cfg, Counter(train_split.targets), classes)
    if problem:
        raise ConfigError(problem)


def ipc_shortfall(cfg: DictConfig, counts: Counter, classes: list[str]) -> str | None:
    """Why the train images per class (``counts``: label -> images) cannot fill ipc with this selector, and the
    remedies that would help; None when they can. ``fgdd.check`` asks the same question."""
    per_image_selector = "mipc" in cfg.selector  # rded, fgdd: one patch per drawn image, ipc * factor^2 cells
    needed = cfg.ipc * cfg.selector.factor**2 if per_image_selector else cfg.ipc
    mipc = cfg.selector.mipc if per_image_selector else None
    short = {label: min(counts.get(label, 0), mipc) if mipc else counts.get(label, 0) for label in range(len(classes))}
    short = {label: available for label, available in short.items() if available < needed}
    if not short:
        return None
    remedies = ["lower ipc"]
    if mipc is not None and any(counts.get(label, 0) > mipc for label in short):  # mipc, not the class, is the limit
        remedies.append(f"raise selector.mipc (now {mipc})")
    limit = (cfg.dataset.get("limit_per_class") or {}).get("train")
    if limit is not None:
        remedies.append(f"raise dataset.limit_per_class.train (now {limit}; debug=fast sets it)")
    listed = {classes[label]: available for label, available in list(short.items())[:10]}
    pool = f"min(images, selector.mipc={mipc})" if mipc else "images"
    return (
        f"ipc={cfg.ipc} needs {needed} images per class ({cfg.selector.name}"
        f"{': ipc x factor^2, one patch per image' if mipc else ''}), but these classes have fewer ({pool}): "
        f"{listed}{' ...' if len(short) > 10 else ''}; {' or '.join(remedies)}"
    )


def obtain_teacher(cfg: DictConfig, dataset: Any, device: Any, trainer_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from fgdd.teacher import load_teacher, train_teacher  # lightning is imported only when a run starts

    arch = OmegaConf.to_container(cfg.teacher.arch.net, resolve=True)
    if cfg.teacher.checkpoint:
        return load_teacher(cfg.teacher.checkpoint, arch, dataset, device)
    recipe = OmegaConf.to_container(cfg.teacher.recipe, resolve=True)  # its seed is the teacher's own, not the run's
    return train_teacher(arch, dataset, Path(cfg.cache_dir), **recipe, trainer_kwargs=trainer_kwargs, device=device)


def draw_figures(run_dir: Path) -> dict[str, Path]:
    from fgdd.report.figures import distilled_grid_figure, occupancy_figure

    figures = {"distilled_grid": distilled_grid_figure(run_dir / "distilled", run_dir / "figures" / "distilled_grid.png")}
    if (run_dir / "occupancy.json").exists():
        summary = json.loads((run_dir / "occupancy.json").read_text())
        figures["occupancy"] = occupancy_figure(summary, run_dir / "figures" / "occupancy.png")
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


def detach_run_log(run_dir: Path) -> list[logging.Handler]:
    """Take the root logger's file handlers that write into ``run_dir`` (Hydra's run.log) off it and return them:
    a rerun that skips a finished run or is refused then appends nothing to that run's log."""
    root = logging.getLogger()
    held = [h for h in root.handlers
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename).resolve().parent == run_dir]
    for handler in held:
        root.removeHandler(handler)
    return held


def close_handlers(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        handler.close()


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
    metrics_path = run_dir / "metrics.json"
    held = detach_run_log(run_dir)  # until this attempt is known to run, the folder's log stays as it is
    try:
        attempt = prepare_run_dir(cfg, run_dir)
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

    dataset = build_dataset(cfg.dataset)
    train_split, val_split = dataset.train(), dataset.val()
    log.info("dataset %s: %d classes, %d train / %d val images", dataset.name, len(dataset.classes),
             len(train_split), len(val_split))
    check_enough_images(cfg, train_split, list(dataset.classes))
    if is_main_process():
        atomic_write_json(run_dir / DATASET_RECORD, dataset.record())

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
        figures = draw_figures(run_dir)
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
        "data/val_images": float(len(val_split)),  # what the accuracies are measured on
        "data/val_unreadable": float(len(val_split.dropped)),  # unreadable val images left out (dataset.json)
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
