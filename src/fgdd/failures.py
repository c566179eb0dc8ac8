"""A failed run says so in its folder: ``failed.json`` (stage, error, message, time), read by ``fgdd.report``.

A later attempt of the same run keeps earlier failures as ``failed.<n>.json`` (renamed, never deleted).
"""

from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path

from fgdd.utils.io import atomic_write_json

FAILED = "failed.json"


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
    while (run_dir / f"failed.{n}.json").exists():
        n += 1
    archived = run_dir / f"failed.{n}.json"
    path.rename(archived)
    return archived
