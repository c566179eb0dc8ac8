"""Student training on a distilled set (RDED's relabel + eval) and its test accuracy."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, not with the package: fgdd.config registers fgdd.evaluation.settings' schema before every
# compose, and importing Lightning there (before Hydra configures logging) would change what the console prints
_EXPORTS = {
    "InMemoryTrainingSet": "fgdd.evaluation.evaluator",
    "SoftLabelEvaluator": "fgdd.evaluation.evaluator",
    "StudentTrainingSet": "fgdd.evaluation.evaluator",
    "rded_batch_size": "fgdd.evaluation.evaluator",
    "SoftLabelStudent": "fgdd.evaluation.student",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
