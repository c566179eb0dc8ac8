"""Where the student's targets come from: one class per label source, one protocol (``LabelSource``).

- ``OnlineSoftLabels``: RDED's, the frozen teacher labels every augmented CutMix batch (``soft_labels=online``)
- ``StoredSoftLabels``: FKD-style rounds replayed from a ``SoftLabelStore`` (``soft_labels=stored``)
- ``HardLabels``: cross-entropy on the (CutMix-mixed) distilled labels, no teacher (``hard_labels=true``)

The evaluator chooses one from its settings (``label_source``); the student's training step calls ``loss`` under its
autocast and knows no mode. CutMix is drawn here, from the rank's stream the student module hands over at fit start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fgdd.errors import ConfigError
from fgdd.evaluation.augment import apply_cutmix, cutmix, cutmix_params
from fgdd.evaluation.settings import SoftLabels, StudentSettings
from fgdd.evaluation.soft_labels import SoftLabelStore

Forward = Callable[[Tensor], Tensor]  # a module or its torch.compile wrapper: (n, c, h, w) -> (n, k) logits


def soft_label_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    # (n, k) each. KL(teacher || student) at temperature T, batchmean, no T^2 factor: exactly RDED's loss
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    q = F.softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")


def soft_target_kl(student_logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    # the same loss with the teacher's distribution given directly (stored soft labels), targets (n, k) summing to 1
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_p, targets, reduction="batchmean")


def mixed_label_ce(logits: Tensor, labels: Tensor, perm: Tensor, lam: float) -> Tensor:
    # standard CutMix hard-label loss: each source label weighted by the area it keeps
    return lam * F.cross_entropy(logits, labels) + (1.0 - lam) * F.cross_entropy(logits, labels[perm])


class LabelSource(Protocol):
    teacher: nn.Module | None  # the frozen teacher it runs (the student module holds it, in eval mode); None: none
    rounds: int | None  # epochs of distinct batches, replayed in turn after (the batch source's order); None: all
    nbytes: int  # labels held in memory (cost/soft_label_bytes)

    def start(self, mix: torch.Generator, teacher: Forward | None, world_size: int) -> None:
        """At fit start: the rank's CutMix stream and the teacher's forward (compiled or not)."""

    def loss(self, student: Forward, images: Tensor, labels: Tensor, batch_idx: int, epoch: int) -> Tensor:
        """The training loss of one batch, images (n, c, h, w) on the device, labels (n,)."""


class _Mixed:
    # what the online and hard-label sources share: CutMix (or none) on the batch, RDED's optional extra forward
    teacher: nn.Module | None = None
    rounds: int | None = None
    nbytes = 0

    def __init__(self, cutmix: bool, extra_student_forward: bool) -> None:
        self.cutmix = cutmix
        self.extra_student_forward = extra_student_forward
        self._mix: torch.Generator | None = None
        self._teacher: Forward | None = None

    def start(self, mix: torch.Generator, teacher: Forward | None, world_size: int) -> None:
        self._mix, self._teacher = mix, teacher

    def _student_logits(self, student: Forward, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        assert self._mix is not None, "start() first"
        if self.cutmix:
            images, perm, lam = cutmix(images, self._mix)
        else:
            perm, lam = torch.arange(len(labels), device=labels.device), 1.0
        if self.extra_student_forward:
            # RDED's loop runs the student on the batch without gradients (in train mode) before the teacher labels
            # it: batch-norm running statistics move twice per step. Off by default.
            with torch.no_grad():
                student(images)
        return images, student(images), perm, lam  # logits (n, k)


class HardLabels(_Mixed):
    """Cross-entropy on the (CutMix-mixed) distilled labels; no teacher."""

    def loss(self, student: Forward, images: Tensor, labels: Tensor, batch_idx: int, epoch: int) -> Tensor:
        _, logits, perm, lam = self._student_logits(student, images, labels)
        return mixed_label_ce(logits, labels, perm, lam)


class OnlineSoftLabels(_Mixed):
    """RDED's: the teacher's soft labels on every mixed batch, KL at ``temperature``."""

    def __init__(self, teacher: nn.Module, temperature: float, cutmix: bool, extra_student_forward: bool) -> None:
        super().__init__(cutmix, extra_student_forward)
        self.teacher = teacher
        self.temperature = temperature

    def loss(self, student: Forward, images: Tensor, labels: Tensor, batch_idx: int, epoch: int) -> Tensor:
        images, logits, _, _ = self._student_logits(student, images, labels)
        assert self._teacher is not None
        with torch.no_grad():
            teacher_logits = self._teacher(images)  # (n, k), online on the mixed batch
        return soft_label_kl(logits, teacher_logits, self.temperature)


class StoredSoftLabels:
    """FKD-style: the teacher labels the store's first rounds; later epochs replay those batches (same CutMix) with
    the stored top-k labels (fgdd.evaluation.soft_labels). RDED's extra student forward does not apply."""

    def __init__(self, teacher: nn.Module, store: SoftLabelStore, cutmix: bool) -> None:
        self.teacher = teacher
        self.store = store
        self.cutmix = cutmix
        self._mix: torch.Generator | None = None
        self._teacher: Forward | None = None

    @property
    def rounds(self) -> int:
        return self.store.rounds

    @property
    def nbytes(self) -> int:
        return self.store.nbytes

    def start(self, mix: torch.Generator, teacher: Forward | None, world_size: int) -> None:
        if world_size > 1:
            raise ConfigError("evaluator.soft_labels=stored replays one device's batches; use online with ddp")
        self._mix, self._teacher = mix, teacher

    def loss(self, student: Forward, images: Tensor, labels: Tensor, batch_idx: int, epoch: int) -> Tensor:
        store = self.store
        n, _, h, w = images.shape
        if store.recording(epoch):
            assert self._mix is not None and self._teacher is not None, "start() first"
            if self.cutmix:
                perm, box, _ = cutmix_params(n, h, w, self._mix)  # the same draws as the online source
            else:
                perm, box = torch.arange(n), (0, 0, 0, 0)
            images = apply_cutmix(images, perm, box)
            with torch.no_grad():
                teacher_logits = self._teacher(images)  # (n, k): the only teacher forwards
            targets = store.record(epoch, batch_idx, labels, perm, box, teacher_logits)
        else:
            perm, box, targets = store.replay(epoch, batch_idx, labels)
            images = apply_cutmix(images, perm, box)
        return soft_target_kl(student(images), targets.to(images.device), store.temperature)


def label_source(settings: StudentSettings, teacher: nn.Module | None) -> LabelSource:
    """The source ``settings`` ask for (hard_labels, soft_labels), with the run's teacher where it needs one."""
    if settings.hard_labels:
        return HardLabels(settings.cutmix, settings.extra_student_forward)
    if teacher is None:
        raise ConfigError("soft-label evaluation needs a teacher; use evaluator=hard_label to train without one")
    if settings.soft_labels is SoftLabels.stored:
        rounds = min(settings.soft_label_rounds or settings.epochs, settings.epochs)
        return StoredSoftLabels(teacher, SoftLabelStore(rounds, settings.soft_label_topk, settings.temperature),
                                settings.cutmix)
    return OnlineSoftLabels(teacher, settings.temperature, settings.cutmix, settings.extra_student_forward)
