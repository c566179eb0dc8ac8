"""RDED's relabel + eval protocol: train a fresh student on the distilled set with the teacher's soft labels,
test it on the full val split."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fgdd.data.spec import DatasetSpec
from fgdd.errors import ClassMismatchError, ConfigError, FgddError
from fgdd.evaluation.augment import BatchAugment, StudentTrainTransform
from fgdd.evaluation.eval_images import EvalBatches, EvalImages, StreamedEvalImages, decode_eval_images, top1
from fgdd.evaluation.labels import label_source
from fgdd.evaluation.loaders import AugmentedDistilledSet, AugmentParamsSet, SeededEpochSampler
from fgdd.evaluation.plain import PlainBatchAugment, PlainTrainTransform
from fgdd.evaluation.settings import Pipeline, SoftLabels, StudentSettings
from fgdd.evaluation.student import SoftLabelStudent, validation_epochs
from fgdd.training.batches import BatchedEpochs, DeviceBatches, EpochDraws
from fgdd.training.callbacks import LastCheckpoint, usable_checkpoint
from fgdd.utils.console import progress_bars
from fgdd.utils.seeding import STUDENT_DATA, STUDENT_EPOCH, STUDENT_INIT, STUDENT_WORKERS, derive_seed, seed_everything

log = logging.getLogger(__name__)

# Trainer arguments the evaluator owns; a trainer config that sets them would silently lose
_OWNED_TRAINER_KEYS = ("max_epochs", "min_epochs", "max_steps", "check_val_every_n_epoch", "logger")

# RDED (argument.py): batch size by IPC, for the three IPCs it defines
_RDED_IPC_BATCH = {1: 10, 10: 50, 50: 100}


class StudentTrainingSet(Protocol):
    """What a student trains on: (PIL image, label) items and the shape of the set; fgdd.selection.DistilledSet
    reads ``ipc`` and ``factor`` from its own distilled.json."""

    ipc: int  # images per class: RDED's batch-size rule
    factor: int  # mosaic side in cells: the tile shuffle of RDED's augmentation (1: whole photos, no shuffle)

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> tuple[Image.Image, int]: ...


class InMemoryTrainingSet(Dataset):
    """(PIL image, label) items held in memory, with the ipc and factor they were made for: a student's training set
    that is not a written DistilledSet (images made elsewhere, benchmarks, tests)."""

    def __init__(self, items: Sequence[tuple[Image.Image, int]], *, ipc: int, factor: int) -> None:
        self.items = list(items)
        self.ipc = ipc
        self.factor = factor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.items[index]


def rded_batch_size(ipc: int, num_classes: int) -> int:
    if ipc < 1 or num_classes < 1:
        raise ConfigError(f"ipc and num_classes must be positive, got ipc={ipc}, num_classes={num_classes}")
    if num_classes == 200:
        batch = 100  # RDED special-cases Tiny-ImageNet (200 classes): 100 at every IPC
    else:
        # RDED defines only IPC 1, 10 and 50; any other IPC takes the rule of the nearest of those on a log scale
        # (IPC 2-3 -> IPC 1's 10, IPC 4-22 -> IPC 10's 50, IPC 23+ -> IPC 50's 100), since batch size tracks the
        # order of magnitude of the set size
        nearest = min(_RDED_IPC_BATCH, key=lambda k: (abs(math.log(ipc / k)), k))
        batch = _RDED_IPC_BATCH[nearest] * (2 if num_classes >= 100 else 1)  # RDED doubles for 100 and 1000 classes
    return min(batch, ipc * num_classes)  # RDED caps the batch at the set size


def _teacher_state(teacher: nn.Module | None) -> Callable[[], None]:
    # Lightning moves the whole module (teacher included) to the CPU at teardown and the student module freezes
    # the teacher; the caller gets its teacher back where and as it was (it may still score other sets)
    if teacher is None:
        return lambda: None
    params = list(teacher.parameters())
    device = params[0].device if params else None
    flags = [p.requires_grad for p in params]
    training = teacher.training

    def restore() -> None:
        if device is not None:
            teacher.to(device)
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        teacher.train(training)

    return restore


class SoftLabelEvaluator:
    """RDED's student recipe run on a training set (``evaluate``), its settings one ``StudentSettings``."""

    def __init__(self, settings: StudentSettings | None = None, /, **fields: Any) -> None:
        # the settings, or their fields by name: what conf/evaluator/rded.yaml's `_target_` passes (its keys are the
        # fields, checked by the schema while composing), and what benchmarks and tests write
        if settings is not None and fields:
            raise ConfigError(f"SoftLabelEvaluator takes its settings or their fields, not both (got {sorted(fields)})")
        self.settings = settings if settings is not None else StudentSettings(**fields)

    # what the wrapping evaluators (holdout, lr search, full real) read of their inner one
    @property
    def epochs(self) -> int:
        return self.settings.epochs

    @property
    def num_workers(self) -> int:
        return self.settings.num_workers

    @property
    def hard_labels(self) -> bool:
        return self.settings.hard_labels

    @property
    def batch_size(self) -> int | None:
        return self.settings.batch_size

    def evaluate(
        self,
        distilled: StudentTrainingSet,
        val: EvalImages | Any,  # the decoded val split (run.py decodes it once), or an ImageSplit (decoded here)
        student: nn.Module,
        teacher: nn.Module | None,
        *,
        lr: float,
        spec: DatasetSpec,  # input size, normalisation and class count of the student's input
        seed: int,
        trainer_kwargs: Mapping[str, Any],
        logger: Any = None,
        checkpoint: Path | None = None,  # where this training keeps its resume state (settings.checkpoint_every_s)
    ) -> dict[str, float]:
        """Trains the student and returns its metrics. With ``checkpoint``, the training saves its state there and
        a call that finds it (a rerun of a killed run) resumes from it: the same numbers as an uninterrupted one."""
        s = self.settings
        # online teacher, stored rounds or hard labels (the hard-label baseline leaves the run's teacher unused)
        labels = label_source(s, teacher)
        owned = [k for k in _OWNED_TRAINER_KEYS if k in trainer_kwargs]
        if owned:
            raise ConfigError(
                f"trainer config sets {owned}, which the evaluator controls (evaluator.epochs, eval_every, the "
                "logger group); remove them from the trainer config"
            )
        classes = getattr(distilled, "classes", None)  # a DistilledSet's own list; an in-memory set has none
        if classes is not None and list(classes) != list(spec.classes):
            raise ClassMismatchError("the student's training set vs the dataset", list(spec.classes), list(classes))
        ipc, factor, num_classes = int(distilled.ipc), int(distilled.factor), spec.num_classes
        input_size, mean, std = spec.input_size, spec.mean, spec.std
        batch_size = s.batch_size if s.batch_size is not None else rded_batch_size(ipc, num_classes)
        # the student stage's one reseed of the global RNGs: dropout and anything else that takes no generator
        seed_everything(derive_seed(seed, STUDENT_INIT))

        if not isinstance(val, EvalImages):
            val = decode_eval_images(val, input_size, num_workers=s.num_workers)
        if s.rded_test_per_class is not None and isinstance(val, StreamedEvalImages):  # before training, not after
            raise ConfigError("evaluator.rded_test_per_class needs the val split held decoded; it is streamed here "
                              "(too large): set evaluator.rded_test_per_class=null")
        transform = (StudentTrainTransform(input_size, factor, mean, std) if s.augment
                     else PlainTrainTransform(input_size, mean, std))
        train_set = AugmentedDistilledSet.preload(distilled, num_classes, transform)
        data_seed = derive_seed(seed, STUDENT_DATA)
        rounds = labels.rounds  # stored soft labels: the batches of the first rounds, replayed in order
        device_batches: DeviceBatches | None = None  # the device paths: pixels + augmentation where training runs
        train_loader: Any
        if s.pipeline is Pipeline.batched:
            pixels = train_set.stacked("evaluator.pipeline=batched", "evaluator.pipeline=loader")  # (N, 3, h, w)
            batch_augment = (BatchAugment(input_size, factor, mean, std) if s.augment
                             else PlainBatchAugment(input_size, mean, std))
            train_loader = BatchedEpochs(torch.tensor(train_set.labels), pixels.shape[2], pixels.shape[3],
                                         batch_augment, batch_size, data_seed, STUDENT_EPOCH, rounds)
            device_batches = DeviceBatches(pixels, batch_augment)
        else:
            loaded: Dataset = train_set
            if s.augment_on_device:  # loader workers only draw the augmentation choices; pixels on the device
                pixels = train_set.stacked("evaluator.augment_on_device=true", "evaluator.augment_on_device=false")
                device_batches = DeviceBatches(pixels, transform)
                loaded = AugmentParamsSet(pixels.shape[2], pixels.shape[3], train_set.labels, transform)
            train_loader = DataLoader(
                loaded,
                batch_size=batch_size,
                sampler=SeededEpochSampler(len(train_set), data_seed, rounds=rounds),
                num_workers=s.num_workers,
                # torch seeds each worker's torch, random and numpy RNGs from this generator (the augmentation itself
                # draws from per-sample generators, SeededEpochSampler)
                generator=torch.Generator().manual_seed(derive_seed(seed, STUDENT_WORKERS)),
                persistent_workers=s.num_workers > 0,
                pin_memory=torch.cuda.is_available(),
            )
        restore = _teacher_state(labels.teacher)  # before the module freezes it
        # validated at the end of RDED's tail epochs only (the module's schedule: Lightning's validation loop is not
        # used), so early epochs pay no val-set pass
        module = SoftLabelStudent(student, labels, s, lr=lr, seed=seed, device_batches=device_batches,
                                  val_batches=EvalBatches(val, s.val_batch_size),  # this rank's share, uint8
                                  validate_on=validation_epochs(s.epochs, s.eval_every, s.tail_fraction),
                                  mean=mean, std=std)
        module.hparams.update({"batch_size": batch_size, "ipc": ipc, "factor": factor, "input_size": input_size})
        kwargs: dict[str, Any] = {
            "enable_checkpointing": False,  # a student is cheap to retrain; the metrics are the output
            "enable_model_summary": False,
        }
        kwargs.update(trainer_kwargs)
        kwargs["callbacks"] = [*list(kwargs.get("callbacks") or []),
                               *progress_bars(kwargs.get("enable_progress_bar", True))]
        resume = None
        if checkpoint is not None and s.checkpoint_every_s is not None:
            if s.soft_labels is SoftLabels.stored:  # the stored labels live in memory only
                log.info("no student checkpoint with evaluator.soft_labels=stored: a killed student restarts")
            else:
                kwargs["callbacks"].append(LastCheckpoint(checkpoint, every_s=s.checkpoint_every_s))
                kwargs["enable_checkpointing"] = True  # LastCheckpoint's (Lightning then adds none of its own)
                if isinstance(train_loader, BatchedEpochs):
                    kwargs["callbacks"].append(EpochDraws(train_loader))
                resume = usable_checkpoint(checkpoint)
        trainer = L.Trainer(max_epochs=s.epochs, logger=logger if logger is not None else False, **kwargs)
        if resume is not None:
            log.info("resuming student training from %s", resume)

        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # Lightning suggests more workers for tiny in-memory sets; the worker count is a config setting
                warnings.filterwarnings("ignore", message=".*does not have many workers.*")
                # the frozen teacher is in eval mode on purpose
                warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
                trainer.fit(module, train_dataloaders=train_loader, ckpt_path=resume)
        finally:
            restore()
        seconds = time.perf_counter() - start
        results = self._results(module.val_history, seconds, labels.nbytes, module.bf16)
        if s.rded_test_per_class is not None:
            results.update(self._rded_test_top1(module, val, mean, std))
        return results

    def _rded_test_top1(self, module: SoftLabelStudent, val: EvalImages, mean: Sequence[float],
                        std: Sequence[float]) -> dict[str, float]:
        s = self.settings
        # the final student on RDED's smaller test set (a subset of the val split, scored like the validations)
        subset = val.first_per_class(s.rded_test_per_class)
        top1_subset = top1(module.student, subset, mean, std, module.device, bf16=module.bf16,
                           batch_size=s.val_batch_size, desc="student on rded's test set")
        return {"student/top1_final_rded_test": top1_subset, "data/rded_test_images": float(len(subset))}

    def _results(
        self, history: list[dict[str, float]], seconds: float, soft_label_bytes: int, bf16: bool
    ) -> dict[str, float]:
        s = self.settings
        if not history or int(history[-1]["epoch"]) != s.epochs - 1:
            last = int(history[-1]["epoch"]) if history else None
            raise FgddError(
                f"student training stopped before its final epoch {s.epochs - 1} (last validated epoch: {last}); "
                "the final-epoch accuracy is the primary number, so the run cannot report it. Check max_time or "
                "an interrupt in the trainer config; with strategy=ddp_spawn results stay in the workers (use ddp)"
            )
        final = history[-1]
        return {
            "student/top1_final": final["top1"],
            "student/top5_final": final["top5"],
            "student/top1_best_tail": max(h["top1"] for h in history),  # RDED's reported number: max over the tail
            "student/train_seconds": float(seconds),
            "student/epochs": float(s.epochs),
            "cost/soft_label_bytes": float(soft_label_bytes),  # stored soft labels held in memory; 0 when online
            "student/bf16": float(bf16),  # 1: forward passes ran under bf16 autocast (evaluator.precision)
        }
