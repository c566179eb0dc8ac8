"""Read run folders (config.yaml, run.json, metrics.json, failed.json, .hydra/overrides.yaml) into flat rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fgdd.run_folder import CONFIG, METRICS, RUN_RECORD
from fgdd.run_folder import FAILED as FAILED_RECORD

DONE, FAILED, UNFINISHED = "done", "failed", "unfinished"
SOFT, HARD = "soft-label", "hard-label"

# metrics.json of older runs carries the same numbers under the names on the right
COST_FALLBACKS = {"cost/distill_s": "time/select_s", "cost/distilled_bytes": "distilled/bytes"}


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` holding a config.yaml written by fgdd.run, sorted."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG) if (p.parent / RUN_RECORD).exists())


def read_status(run_dir: Path) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(status, metrics, failure): metrics.json = done; failed.json without it = failed; neither = unfinished
    (running, or killed before it could say so)."""
    metrics_path, failed_path = run_dir / METRICS, run_dir / FAILED_RECORD
    if metrics_path.exists():
        return DONE, json.loads(metrics_path.read_text()), None
    if failed_path.exists():
        try:
            failure = json.loads(failed_path.read_text())
        except json.JSONDecodeError as error:  # written atomically by fgdd, so only a hand-edited file gets here
            failure = {"stage": "?", "error": "unreadable failed.json", "message": str(error)}
        return FAILED, None, failure
    return UNFINISHED, None, None


def stopped_by_a_signal(failure: dict[str, Any]) -> bool:
    """A failed.json written as a run was stopped, not as it broke: Ctrl-C, or a signal (fgdd.cli exits a SIGTERM
    with 128 + 15, recorded as SystemExit with the status as its message)."""
    message = str(failure.get("message", ""))
    return failure.get("error") == "KeyboardInterrupt" or (
        failure.get("error") == "SystemExit" and message.isdigit() and int(message) > 128)


def read_overrides(run_dir: Path) -> list[str] | None:
    """The job's command-line overrides as Hydra recorded them; None for runs made outside Hydra."""
    path = run_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.exists() else None


def read_record(run_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, json.JSONDecodeError):  # written atomically by fgdd, so only a hand-edited file gets here
        return {}
    return record if isinstance(record, dict) else {}


def precision_label(record: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The stages that computed in less than fp32 (``student bf16``), else ``fp32``; from run.json, or for runs
    recorded before it held precisions from metrics.json's student/bf16; ``-`` when neither says."""
    stages = record.get("precision")
    if not isinstance(stages, dict):
        if "student/bf16" not in metrics:
            return "-"
        stages = {"student": "bf16" if metrics["student/bf16"] else "fp32"}
    reduced = [f"{stage} {value}" for stage, value in stages.items() if value in ("bf16", "fp16")]
    return ", ".join(reduced) or "fp32"


def load_row(run_dir: Path) -> dict[str, Any]:
    config = yaml.safe_load((run_dir / CONFIG).read_text())
    status, metrics, failure = read_status(run_dir)
    metrics = metrics or {}
    record = read_record(run_dir)
    costs = {key: metrics.get(key, metrics.get(old)) for key, old in COST_FALLBACKS.items()}
    return {
        "run": str(run_dir),
        "dataset": config["dataset"]["name"],
        "selector": config["selector"]["name"],
        "method": method_label(config["selector"]),
        "student": config["model"]["name"],
        "teacher": teacher_label(config["teacher"]),
        "evaluator": evaluator_label(config.get("evaluator")),
        "ipc": config["ipc"],
        "seed": config["seed"],
        "status": status,
        "failure": failure,
        "precision": precision_label(record, metrics),  # the same seed gives the same digits only at one precision
        "machine": record.get("machine"),  # CPU model and kernels, threads, GPU (run.json)
        "overrides": read_overrides(run_dir),
        "evaluator_config": config.get("evaluator"),  # DD-Ranking's controls are told apart by it (report.scores)
        "logger_config": config.get("logger"),  # the report's figures go to W&B when the runs went there
        **metrics,
        **costs,
    }


def method_label(selector: dict[str, Any]) -> str:
    """The selector's name, plus its foreground settings where it has them: ``fgdd(cam, quantile 0.5)``; an external
    set (selector=folder) with its folder's name, so two sets never share a row."""
    if selector.get("path"):
        return f"{selector['name']}({Path(str(selector['path'])).name})"
    if "segmenter" not in selector:
        return selector["name"]
    threshold = selector["threshold"]
    detail = " ".join(str(v) for k, v in threshold.items() if k not in ("_target_", "name"))
    parts = [selector["segmenter"]["name"], f"{threshold['name']} {detail}".strip()]
    if selector.get("resize_to", "cell") != "cell":
        parts.append(f"resize_to={selector['resize_to']}")
    if not selector.get("compete", True):
        parts.append("no competition")
    return f"{selector['name']}({', '.join(parts)})"


def teacher_label(teacher: dict[str, Any]) -> str:
    """The observer's architecture, and its file when it was loaded: rows with different teachers never mix."""
    name = teacher["arch"]["name"]
    checkpoint = teacher.get("checkpoint")
    return f"{name} ({Path(str(checkpoint)).name})" if checkpoint else name


def evaluator_label(evaluator: dict[str, Any] | None) -> str:
    """``soft-label`` (RDED: teacher soft labels computed online at student time), ``hard-label`` (no teacher at
    student time), or ``soft-label (stored top-10, 30 rounds)`` (replayed stored labels: not RDED's protocol,
    so never mixed with, nor compared to, RDED's numbers); ``(no aug)`` / ``(no CutMix)`` / ``(no crop/flip)`` when
    the student augmentation is off; ``..., lr search on holdout`` for DD-Ranking's learning-rate search and
    ``full-real reference (...)`` for the student trained on the whole training split; another evaluator class is
    named in front."""
    if not evaluator:  # runs from before the evaluator group existed used RDED's soft labels
        return SOFT
    if evaluator.get("protocol", "fgdd") != "fgdd":  # DD-Ranking's exact protocol: never merged with fgdd's rows
        return f"{evaluator_label({k: v for k, v in evaluator.items() if k != 'protocol'})} [{evaluator['protocol']}]"
    cls = str(evaluator.get("_target_", "")).rsplit(".", 1)[-1]
    if cls == "LRSearchEvaluator":
        return f"{evaluator_label(evaluator.get('inner'))}, lr search on {evaluator.get('select_on', 'holdout')}"
    if cls == "FullRealEvaluator":
        return f"full-real reference ({evaluator_label(evaluator.get('inner'))})"
    if evaluator.get("hard_labels"):
        kind = HARD
    elif evaluator.get("soft_labels", "online") == "stored":
        kind = f"{SOFT} (stored top-{evaluator.get('soft_label_topk')}, {evaluator.get('soft_label_rounds')} rounds)"
    else:
        kind = SOFT
    augment, cutmix = evaluator.get("augment", True), evaluator.get("cutmix", True)
    off = {(False, False): "no aug", (False, True): "no crop/flip", (True, False): "no CutMix"}.get((augment, cutmix))
    if off:
        kind = f"{kind} ({off})"
    return kind if cls in ("", "SoftLabelEvaluator") else f"{cls}:{kind}"
