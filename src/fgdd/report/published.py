"""Published numbers to put beside measured ones, from a CSV (experiments/<table>/published.csv).

Columns: dataset, student, ipc, method, top1 (percent, empty = not public yet), source; optional evaluator
(``soft-label``, the default, or ``hard-label``). ``dataset`` and ``student`` are fgdd's config names
(``cifar10``, ``resnet18_modified``). ``method`` is matched against a row's full method label first
(``fgdd(grounded_sam2, quantile 0.5)``), then against its selector name (``fgdd``), so a plain selector name
covers every variant of it and a full label pins one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgdd.report.collect import SOFT

REQUIRED = ("dataset", "student", "ipc", "method", "top1", "source")

Key = tuple[str, str, int, str, str]  # dataset, student, ipc, method, evaluator


@dataclass(frozen=True)
class Published:
    top1: float | None  # a fraction, as fgdd's metrics; None: the row exists but its number is not known
    source: str


def load_published(path: str | Path) -> dict[Key, Published]:
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; needs {', '.join(REQUIRED)}")
        table: dict[Key, Published] = {}
        for line, record in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                ipc = int(record["ipc"])
            except ValueError:
                raise ValueError(f"{where}: ipc must be an integer, got {record['ipc']!r}") from None
            top1 = _percent(record["top1"], where)
            key = (record["dataset"].strip(), record["student"].strip(), ipc, record["method"].strip(),
                   (record.get("evaluator") or SOFT).strip())
            if key in table:
                raise ValueError(f"{where}: a second row for {key}")
            table[key] = Published(None if top1 is None else top1 / 100, record["source"].strip())
    return table


def _percent(text: str | None, where: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: top1 must be a number in percent or empty, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{where}: top1 is in percent (0-100), got {value}")
    return value


def lookup(table: dict[Key, Published], cell: dict[str, Any]) -> Published | None:
    for method in (cell["method"], cell["selector"]):
        hit = table.get((cell["dataset"], cell["student"], int(cell["ipc"]), method, cell["evaluator"]))
        if hit is not None:
            return hit
    return None
