"""The full-real reference's metrics (fgdd.evaluation.full_real), trained once and reused by every run whose key
matches: ``<cache_dir>/full_real/<dataset>-<digest>.json``, {"metrics": {...}, "key": {...}}.

Before this module the entries were named with 20 digest characters (``<dataset>-<sha256[:20]>.json``, the same
digest of the same key); such an entry is read once and copied to its current name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fgdd.cache.keyed import KeyedEntry, key_digest

KIND = "full_real"
_OLD_DIGEST_CHARS = 20  # the names fgdd gave these entries before they were keyed entries


class ReferenceCache:
    def __init__(self, cache_dir: str | Path, dataset_name: str, key: Mapping[str, Any]) -> None:
        self.entry = KeyedEntry(cache_dir, KIND, key, prefix=dataset_name, suffix=".json")
        self.path = self.entry.path
        self.old_path = Path(cache_dir) / KIND / f"{dataset_name}-{key_digest(key)[:_OLD_DIGEST_CHARS]}.json"

    def get(self) -> dict[str, float] | None:
        """The stored metrics, or None (absent, unreadable or written for another key: trained again)."""
        metrics = self.entry.read_json(_metrics)
        return metrics if metrics is not None else self.entry.adopt_json(self.old_path, _metrics)

    def put(self, metrics: Mapping[str, float]) -> None:
        self.entry.write_json({"metrics": dict(metrics)})  # a concurrent run's equal reference may be there first


def _metrics(record: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in record["metrics"].items()}
