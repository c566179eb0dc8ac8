"""The student evaluator's settings (``conf/evaluator/rded.yaml`` and the evaluators built on it): one frozen record,
its choices as enums, checked once.

The same fields are registered as a Hydra structured config (``register_schema``; ``rded.yaml`` takes it as its base
through ``/schema/student_evaluator@_here_``), so that a wrong choice (``evaluator.pipeline=fast``) or a value of the
wrong type is refused while the command line is composed, before anything runs, with the allowed values named.
Numeric ranges and rules between fields are checked by ``StudentSettings.__post_init__`` (the run's config
validation builds it from every node the schema types: fgdd.config.check_typed_settings).
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass

from fgdd.errors import ConfigError
from fgdd.utils.choices import Pipeline, Precision, choice

EVALUATOR = "fgdd.evaluation.SoftLabelEvaluator"  # the `_target_` the schema gives (report/ reads its class name)
SCHEMA_GROUP, SCHEMA_NAME = "schema", "student_evaluator"  # ConfigStore: /schema/student_evaluator


class SoftLabels(enum.StrEnum):
    online = "online"  # RDED: the teacher labels every batch
    stored = "stored"  # FKD-style rounds replayed (fgdd.evaluation.soft_labels)


class Optimizer(enum.StrEnum):
    adamw = "adamw"  # RDED's recipe
    sgd = "sgd"  # DD-Ranking's real-data one (fgdd.evaluation.optim)


# torch.compile's modes, spelt as torch spells them (hence the functional form: member names with hyphens)
CompileMode = enum.StrEnum("CompileMode", {m: m for m in ("default", "reduce-overhead", "max-autotune")})  # type: ignore[misc]


@dataclass(frozen=True)
class StudentSettings:
    epochs: int = 300
    batch_size: int | None = None  # None: RDED's rule from ipc and num_classes
    temperature: float = 20.0  # RDED's T for CutMix
    weight_decay: float = 0.01
    eval_every: int = 10
    tail_fraction: float = 0.2  # validate only in the last 20 % of epochs (plus the final epoch)
    num_workers: int = 0
    cutmix: bool = True
    hard_labels: bool = False  # True: CE on the (CutMix-mixed) distilled labels, no teacher
    val_batch_size: int = 256  # inference only; does not change any number
    augment_on_device: bool = False  # pipeline=loader: the set as one uint8 tensor on the device, augmented there
    soft_labels: SoftLabels = SoftLabels.online
    soft_label_rounds: int | None = None  # stored: epochs whose batches are labelled and replayed (None: all)
    soft_label_topk: int = 10  # stored: classes kept per label (fp16)
    channels_last: bool = True  # student weights and batches in NHWC memory order (faster conv kernels)
    pipeline: Pipeline = Pipeline.batched
    precision: Precision = Precision.auto  # autocast of the student's and teacher's forward passes
    extra_student_forward: bool = False  # RDED's code: one more no-grad student forward per step
    compile: CompileMode | None = None  # torch.compile mode of the forward passes (GPU option); None: eager
    augment: bool = True  # False: no tile shuffle, crop or flip; each image resized, normalised (CutMix: cutmix)
    rded_test_per_class: int | None = None  # also score the final student on RDED's test set: these many val
                                               # images per class (RDED's val_ipc, 50 for ImageNette/ImageWoof)
    optimizer: Optimizer = Optimizer.adamw
    momentum: float = 0.9  # sgd only
    lr_step: int | None = None  # None: RDED's cosine schedule; N: the rate x0.1 every N epochs
    checkpoint_every_s: float | None = 300.0  # a run's student saves its state this often (at an epoch's end) and a
                                               # rerun resumes from it; None: no checkpoint, a killed student restarts

    def __post_init__(self) -> None:
        # strings (Python callers) become the enums; the schema already refused any other value
        for name, kind in (("pipeline", Pipeline), ("precision", Precision), ("soft_labels", SoftLabels),
                           ("optimizer", Optimizer)):
            object.__setattr__(self, name, choice(kind, getattr(self, name), f"evaluator.{name}"))
        if self.compile is not None:
            object.__setattr__(self, "compile", choice(CompileMode, self.compile, "evaluator.compile"))
        if self.epochs < 1 or self.eval_every < 1 or self.val_batch_size < 1 or self.num_workers < 0:
            raise ConfigError(
                f"evaluator needs epochs, eval_every, val_batch_size >= 1 and num_workers >= 0; got "
                f"epochs={self.epochs}, eval_every={self.eval_every}, val_batch_size={self.val_batch_size}, "
                f"num_workers={self.num_workers}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"evaluator.batch_size must be >= 1 or null (RDED's rule), got {self.batch_size}")
        if not 0.0 <= self.tail_fraction <= 1.0:
            raise ConfigError(f"evaluator.tail_fraction must be in [0, 1], got {self.tail_fraction}")
        if self.temperature <= 0:
            raise ConfigError(f"evaluator.temperature must be > 0, got {self.temperature}")
        if self.pipeline is Pipeline.batched and self.augment_on_device:
            raise ConfigError("evaluator.augment_on_device belongs to pipeline=loader (the batched pipeline always "
                              "augments where the pixels are); set one of them")
        if self.rded_test_per_class is not None and self.rded_test_per_class < 1:
            raise ConfigError(f"evaluator.rded_test_per_class must be >= 1 or null, got {self.rded_test_per_class}")
        if self.soft_labels is SoftLabels.stored and self.hard_labels:
            raise ConfigError("evaluator.soft_labels=stored stores the teacher's labels; hard_labels=true uses none")
        if (self.soft_label_rounds is not None and self.soft_label_rounds < 1) or self.soft_label_topk < 1:
            raise ConfigError(
                f"evaluator.soft_label_rounds must be >= 1 or null and soft_label_topk >= 1; got "
                f"{self.soft_label_rounds}, {self.soft_label_topk}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"evaluator.momentum must be in [0, 1), got {self.momentum}")
        if self.checkpoint_every_s is not None and self.checkpoint_every_s < 0:
            raise ConfigError(f"evaluator.checkpoint_every_s must be >= 0 or null (no checkpoint), got "
                              f"{self.checkpoint_every_s}")
        if self.lr_step is not None and self.lr_step < 1:
            raise ConfigError(f"evaluator.lr_step must be >= 1 or null (RDED's cosine), got {self.lr_step}")


def _schema() -> type:
    # the structured config: StudentSettings' fields (not frozen: Hydra merges the YAML into it) + the `_target_`
    hints = typing.get_type_hints(StudentSettings)
    fields = [(f.name, hints[f.name], dataclasses.field(default=f.default)) for f in dataclasses.fields(StudentSettings)]
    schema = dataclasses.make_dataclass("StudentEvaluatorSchema",
                                        [("_target_", str, dataclasses.field(default=EVALUATOR)), *fields])
    schema.__module__ = __name__
    return schema


StudentEvaluatorSchema = _schema()


def register_schema() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group=SCHEMA_GROUP, name=SCHEMA_NAME, node=StudentEvaluatorSchema)
