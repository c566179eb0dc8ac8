"""The run folder: the names of the files a run writes (used by fgdd.report too), what it records about itself
(resolved config, code version, environment; a failure as ``failed.json``), and the policy of one folder per run (a
rerun resumes, another config is refused, an attempt that failed before any stage finished is set aside by a
corrected rerun; earlier failures are kept as ``failed.<n>.json``, renamed, never deleted)."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import fgdd
from fgdd.errors import FgddError
from fgdd.utils.distributed import is_main_process, wait_for
from fgdd.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("fgdd")

CONFIG = "config.yaml"  # the resolved config of the attempt; a rerun compares against it
RUN_RECORD = "run.json"  # code version and environment (run_record) of the attempt that began the run
RESUMES = "resumes"  # run.json's list of the later attempts that resumed it, each with its own run_record and time
FAILED = "failed.json"  # stage, error, message, time of a failed attempt; read by fgdd.report
METRICS = "metrics.json"  # present only when the run finished; a rerun then returns it and does nothing
DISTILLED = "distilled"  # the distilled set (fgdd.selection.distilled_set)
# inside a distilled set (here, in the cache's entries, in an export): its description (classes, ipc, factor),
# written last, so its presence means the set is whole; and its patches, one JSON record each
DISTILLED_META = "distilled.json"
DISTILLED_MANIFEST = "manifest.jsonl"
OCCUPANCY = "occupancy.json"  # selector=fgdd: per-class occupancy summary, for the figure
FIGURES = "figures"
SELECTION_COST = "selection.json"  # seconds the selection took when the set was made (kept when it is reused)
DATASET_RECORD = "dataset.json"  # what the run read: images per split, classes left aside, unreadable val images
LOGS = "logs"  # the csv logger's per-epoch metrics
RESUME = "resume"  # the student's checkpoints while it trains (evaluator.checkpoint_every_s); removed when it finished
STUDENT_CHECKPOINT = "student.ckpt"
# What a finished stage leaves in a run folder: an attempt that failed before any of these exists holds no result,
# so a retry with other settings may set it aside (a teacher lives in the cache, keyed by its own settings)
STAGE_OUTPUTS = (DISTILLED, OCCUPANCY, SELECTION_COST, FIGURES, METRICS)
# The records of one attempt, set aside together as <stem>.<n><suffix> when a retry replaces them
ATTEMPT_RECORDS = (CONFIG, RUN_RECORD, FAILED, DATASET_RECORD)
# Settings whose default comes from the environment: the run folder's name (a hash of the command line) does not
# include them, so a refusal names the variable and the override that gets past it
ENV_SETTINGS = {"data_root": "FGDD_DATA_DIR", "cache_dir": "FGDD_CACHE_DIR"}
REPO = Path(__file__).resolve().parents[2]  # a clone's root, for the git state
CONFIG_WAIT_S = 600.0  # DDP: how long the other ranks wait for rank 0 to record a retried run's config


def prepare_run_dir(current: str, record: Callable[[], dict[str, Any]], run_dir: Path) -> str:
    """Record the config (``current``: its resolved YAML, fgdd.config.resolved_yaml) and run.json (``record()``,
    asked only when the folder is written: run_record; a resumed unfinished run appends it to run.json's
    ``resumes``); a folder holding a different run's config is refused, never overwritten. Returns what the folder
    holds for this attempt: "new", "resumed" or "retried".

    Keys only the current config has (settings added by a newer fgdd, at their defaults) do not block a resume;
    a changed or removed value does, unless the recorded attempt failed before any stage finished
    (``retryable``): its records are then set aside (``config.<n>.yaml``, ``failed.<n>.json``, ...) and this
    attempt starts afresh in the same folder.
    """
    config_path = run_dir / CONFIG
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
                    _record(record, run_dir, current)
                    return "retried"
                raise FgddError(refusal(run_dir, previous, current, changed))
            log.warning("resuming a run recorded before these settings existed (kept at their defaults): %s",
                        ", ".join(added))
        if is_main_process() and not (run_dir / METRICS).exists():  # a finished run's rerun runs nothing
            _record_resume(record, run_dir)
        return "resumed"
    _record(record, run_dir, current)
    return "new"


def _record(record: Callable[[], dict[str, Any]], run_dir: Path, resolved: str) -> None:
    fields = record()  # first: a device or precision setting it refuses leaves nothing written
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, resolved)
    atomic_write_json(run_dir / RUN_RECORD, fields)


def _record_resume(record: Callable[[], dict[str, Any]], run_dir: Path) -> None:
    # run.json stays the record of the attempt that began the run; each resume appends its own (code, machine,
    # precision, command line) with its start time, so a run finished from another commit or machine says so
    path = run_dir / RUN_RECORD
    fields = json.loads(path.read_text()) if path.exists() else {}
    fields.setdefault(RESUMES, []).append({"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **record()})
    atomic_write_json(path, fields)


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


def git_state(repo: Path = REPO) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", False
    return {"sha": sha or "unknown (not a git checkout)", "dirty": dirty}


def run_record(seed: int, device: Any, precision: dict[str, str]) -> dict[str, Any]:
    """run.json: the code, the environment and the machine (``device``: the run's, picked from its setting), with
    what each stage computes in (``precision``: fgdd.config.stage_precisions)."""
    # only when a run records itself: fgdd.report reads run folders without torch
    import torch

    from fgdd.utils.machine import machine_record

    return {
        "fgdd": fgdd.__version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "argv": sys.argv,
        "seed": seed,
        "machine": machine_record(device),  # CPU model and kernels, bf16 support, threads, GPU
        "precision": precision,  # per stage: fp32 | bf16 (teacher: loaded for a checkpoint)
    }


def record_failure(run_dir: Path, stage: str, error: BaseException) -> Path:
    path = run_dir / FAILED
    atomic_write_json(path, {
        "stage": stage,
        "error": type(error).__name__,
        "message": str(error),
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "traceback": "".join(traceback.format_exception(error)),
    })
    return path


def archive_failure(run_dir: Path) -> Path | None:
    """Rename ``failed.json`` to the first free ``failed.<n>.json`` before a new attempt."""
    path = run_dir / FAILED
    if not path.exists():
        return None
    n = 1
    while (run_dir / numbered(FAILED, n)).exists():
        n += 1
    archived = run_dir / numbered(FAILED, n)
    path.rename(archived)
    return archived
