"""The teacher's training recipe (``teacher.recipe`` of ``conf/teacher/train.yaml``): one frozen record, its choices
as enums, checked once, and the part of a trained teacher's cache key it gives.

The same fields are registered as a Hydra structured config (``register_schema``; train.yaml's ``recipe`` takes it
as its base through ``/schema/teacher_recipe@recipe``), so that a wrong choice (``teacher.recipe.augment=autoaugment``)
is refused while the command line is composed, before anything runs, with the allowed values named. Numeric ranges
are checked by ``TeacherRecipe.__post_init__`` (the run's config validation builds it from the node the schema
types: fgdd.config.check_typed_settings). Imports nothing heavy: the schema is registered before Hydra configures logging.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass
from typing import Any

from fgdd.errors import ConfigError
from fgdd.utils.choices import Pipeline, Precision, choice

SCHEMA_GROUP, SCHEMA_NAME = "schema", "teacher_recipe"  # ConfigStore: /schema/teacher_recipe


class Augment(enum.StrEnum):
    pad_crop_flip = "pad_crop_flip"  # pad by input/8, random crop, flip (the reference teachers in shared/)
    random_resized_crop = "random_resized_crop"  # RandomResizedCrop(crop_scale) + flip: torchvision's reference recipe


@dataclass(frozen=True)
class TeacherRecipe:
    # Numbers stay as they were written (1 stays an int, 1.0 a float): the cache key of a trained teacher holds them
    # so, and teachers cached before this record existed must keep their keys
    epochs: int = 15
    batch_size: int = 256
    lr: float = 0.05  # one-cycle peak (SGD, nesterov)
    weight_decay: float = 5e-4
    momentum: float = 0.9
    label_smoothing: float = 0.1
    augment: Augment = Augment.pad_crop_flip
    crop_scale: tuple[float, float] = (0.08, 1.0)  # random_resized_crop only: the box's area range
    pipeline: Pipeline = Pipeline.batched
    max_decoded_gb: float = 8.0  # batched falls back to loader when the decoded train split would be larger
    precision: Precision = Precision.auto  # autocast of the forward passes (fgdd.utils.precision)
    num_workers: int = 0  # loader: its workers; batched: the workers that decode the split once
    eval_batch_size: int = 256  # inference only
    seed: int = 0  # the teacher's own, not the run's: every run seed of a sweep shares one teacher

    def __post_init__(self) -> None:
        # strings (Python callers) become the enums; the schema already refused any other value
        for name, kind in (("augment", Augment), ("pipeline", Pipeline), ("precision", Precision)):
            object.__setattr__(self, name, choice(kind, getattr(self, name), f"teacher.recipe.{name}"))
        for name in ("epochs", "batch_size", "eval_batch_size", "num_workers", "seed"):
            if not _integer(getattr(self, name)):
                raise ConfigError(f"teacher.recipe.{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "momentum", "label_smoothing", "max_decoded_gb"):
            if not _number(getattr(self, name)):
                raise ConfigError(f"teacher.recipe.{name} must be a number, got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1 or self.num_workers < 0:
            raise ConfigError(
                f"teacher.recipe needs epochs, batch_size, eval_batch_size >= 1 and num_workers >= 0; got "
                f"epochs={self.epochs}, batch_size={self.batch_size}, eval_batch_size={self.eval_batch_size}, "
                f"num_workers={self.num_workers}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or self.max_decoded_gb < 0:
            raise ConfigError(f"teacher.recipe needs lr > 0, weight_decay >= 0 and max_decoded_gb >= 0; got lr={self.lr}, "
                              f"weight_decay={self.weight_decay}, max_decoded_gb={self.max_decoded_gb}")
        if not (0 <= self.momentum < 1 and 0 <= self.label_smoothing < 1):
            raise ConfigError(f"teacher.recipe.momentum and label_smoothing must be in [0, 1); got "
                              f"{self.momentum}, {self.label_smoothing}")
        scale = tuple(self.crop_scale)
        if len(scale) != 2 or not all(_number(s) for s in scale) or not 0 < scale[0] <= scale[1] <= 1:
            raise ConfigError(f"teacher.recipe.crop_scale must be [low, high] with 0 < low <= high <= 1 (fractions of "
                              f"the image's area), got {list(self.crop_scale)}")
        object.__setattr__(self, "crop_scale", scale)

    def key(self, *, aspect: str, batched_px: int | None, precision: str) -> dict[str, Any]:
        """The recipe in a trained teacher's cache key (fgdd.teacher.teacher_cache_key; the seed goes beside it): what
        the weights depend on, spelt as keys were spelt before each setting existed, so that cached teachers stay
        valid. ``aspect``: the dataset's; ``batched_px``: the size the batched pipeline decodes the split at (None: the
        loader trains); ``precision``: what the setting resolved to on the device (fgdd.utils.precision)."""
        recipe = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "nesterov": True,  # fgdd.training.classifier's SGD
            "label_smoothing": self.label_smoothing,
            "schedule": "onecycle",
            "augment": ("teacher_train_transform" if self.augment is Augment.pad_crop_flip
                        else f"{self.augment}{list(self.crop_scale)}"),
        }
        if aspect != "squash":  # squash is what every teacher before the setting was trained with
            recipe["aspect"] = aspect
        if batched_px is not None:  # the loader pipeline in fp32 keeps the key it had before these settings
            recipe["pipeline"] = f"batched-{batched_px}px"
        if precision == "bf16":
            recipe["precision"] = "bf16"
        return recipe


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _schema_type(hint: Any) -> Any:
    # the schema converts no number: an int written where a float is meant stays an int (TeacherRecipe says why);
    # a value that is no number is refused by TeacherRecipe's checks instead, when the config is validated
    if hint is float:
        return Any
    if typing.get_origin(hint) is tuple:
        return list[Any]
    return hint


def _schema() -> type:
    # the structured config: TeacherRecipe's fields, not frozen (Hydra merges the YAML into it)
    hints = typing.get_type_hints(TeacherRecipe)
    fields = []
    for f in dataclasses.fields(TeacherRecipe):
        default = (dataclasses.field(default_factory=lambda d=f.default: list(d)) if isinstance(f.default, tuple)
                   else dataclasses.field(default=f.default))
        fields.append((f.name, _schema_type(hints[f.name]), default))
    schema = dataclasses.make_dataclass("TeacherRecipeSchema", fields)
    schema.__module__ = __name__
    return schema


TeacherRecipeSchema = _schema()


def register_schema() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group=SCHEMA_GROUP, name=SCHEMA_NAME, node=TeacherRecipeSchema)
