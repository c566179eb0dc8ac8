"""Keep a teacher that fgdd trained (a finished cache entry, ``<cache_dir>/teachers/<name>-<key>/``) in the repository,
so that later grid cells and users on a machine with an empty cache load it instead of training it again.

Usage: python benchmarks/keep_teacher.py <cache entry folder> benchmarks/teachers/<stem>

Writes ``<stem>.pth`` (a byte copy of the entry's ``teacher.pth``: weights and fgdd's metadata, so
``teacher=checkpoint teacher.checkpoint=<stem>.pth`` checks classes, input size and normalisation) and
``<stem>.training.json`` (how it was made: the cache key with its recipe, the per-epoch curve, the final val top-1,
the seconds of the logged epochs, the weights' sha256). Two final val top-1s: ``val_top1_final``, the curve's last
validation (forward passes in the training's precision, bf16 where it trained in bf16), and ``val_top1_fp32``, the
checkpoint's own (fgdd.teacher.teacher_accuracy, fp32: the number a run that loads the teacher logs).
Refuses an entry whose training has not finished, and never overwrites a kept teacher with other weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

TEACHER_FILE, KEY_FILE, CURVE_FILE = "teacher.pth", "cache_key.json", "epochs.jsonl"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_val_top1(weights: Path) -> float | None:
    """The val top-1 fgdd stored in the checkpoint's metadata when it saved it (fp32 forward passes)."""
    from fgdd.models.checkpoint import load_checkpoint

    _, meta = load_checkpoint(weights)
    return None if meta is None else meta.val_top1


def training_record(entry: Path) -> dict[str, Any]:
    """What the entry says of its teacher's training (the key without its machine-local train_root)."""
    key = json.loads((entry / KEY_FILE).read_text())
    curve = [json.loads(line) for line in (entry / CURVE_FILE).read_text().splitlines() if line.strip()]
    if not curve:
        raise SystemExit(f"{entry / CURVE_FILE} holds no epoch")
    return {
        "cache_entry": entry.name,
        "key": {k: v for k, v in key.items() if k != "train_root"},
        "epochs_trained": curve[-1]["epoch"] + 1,
        "epochs_logged": len(curve),  # fewer where the training began before its curve was written
        "val_top1_final": curve[-1].get("teacher/val_top1"),  # under the training's precision
        "val_top1_fp32": checkpoint_val_top1(entry / TEACHER_FILE),  # what runs loading the teacher measure
        "logged_seconds": round(sum(e.get("seconds", 0.0) for e in curve), 1),  # of the logged epochs only
        "curve": [{"epoch": e["epoch"], "seconds": e.get("seconds"), "train_loss": e.get("teacher/train_loss"),
                   "train_top1": e.get("teacher/train_top1"), "val_top1": e.get("teacher/val_top1")} for e in curve],
        "weights_file_sha256": file_sha256(entry / TEACHER_FILE),
    }


def keep(entry: Path, stem: Path) -> tuple[Path, Path]:
    if not (entry / TEACHER_FILE).is_file():
        raise SystemExit(f"{entry} has no {TEACHER_FILE}: its training has not finished (resume it by rerunning the "
                         "command that trains it)")
    record = training_record(entry)
    weights, sidecar = stem.with_suffix(".pth"), stem.with_suffix(".training.json")
    if weights.exists() and file_sha256(weights) != record["weights_file_sha256"]:
        raise SystemExit(f"{weights} exists and holds other weights: choose another name (nothing was written)")
    stem.parent.mkdir(parents=True, exist_ok=True)
    partial = weights.with_suffix(".pth.partial")
    shutil.copyfile(entry / TEACHER_FILE, partial)
    partial.replace(weights)
    partial_json = sidecar.with_suffix(".partial")
    partial_json.write_text(json.dumps(record, indent=2) + "\n")
    partial_json.replace(sidecar)
    return weights, sidecar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", type=Path, help="a finished teachers/ cache entry")
    parser.add_argument("stem", type=Path, help="where to keep it, without suffix (e.g. benchmarks/teachers/x)")
    args = parser.parse_args(argv)
    for path in keep(args.entry, args.stem):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
