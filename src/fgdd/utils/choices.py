"""What the typed settings records (fgdd.evaluation.settings.StudentSettings, fgdd.training.teacher_recipe.TeacherRecipe)
share: the choices both stages offer, a setting turned into its enum with the allowed values named, and a record as
plain values. Imports nothing heavy: fgdd.config registers the records' schemas before Hydra configures logging."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from fgdd.errors import ConfigError


class Pipeline(enum.StrEnum):
    batched = "batched"  # the images as one uint8 tensor on the training device, augmentations drawn vectorised there
    loader = "loader"  # per-image transforms in DataLoader workers


class Precision(enum.StrEnum):
    auto = "auto"  # bf16 where the device computes it natively, else fp32 (fgdd.utils.precision)
    fp32 = "fp32"
    bf16 = "bf16"


def choice(kind: type[enum.Enum], value: Any, setting: str) -> Any:
    """``value`` as a member of ``kind``; ``setting`` (evaluator.pipeline) names it in the refusal."""
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{setting} must be one of {', '.join(m.value for m in kind)}, got {value!r}") from None


def plain(record: Any) -> dict[str, Any]:
    """A settings record's fields as plain values (enums as their strings, tuples as lists): a logger's hparams, a
    cache key."""
    def value(v: Any) -> Any:
        return str(v) if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v

    return {k: value(v) for k, v in dataclasses.asdict(record).items()}
