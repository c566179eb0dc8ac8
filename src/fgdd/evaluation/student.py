"""The student side of RDED's relabel + eval: soft labels from the frozen teacher on every CutMix batch."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from fgdd.errors import ConfigError
from fgdd.evaluation.augment import apply_cutmix, cutmix, cutmix_params
from fgdd.evaluation.optim import configure
from fgdd.evaluation.soft_labels import SoftLabelStore
from fgdd.training.batches import DeviceBatches
from fgdd.utils.normalise import normalise

# PRECISIONS, native_bf16 and use_bf16 lived here before fgdd.utils.precision: still importable from here
from fgdd.utils.precision import PRECISIONS as PRECISIONS
from fgdd.utils.precision import Resolved, autocast, resolve_precision
from fgdd.utils.precision import native_bf16 as native_bf16
from fgdd.utils.precision import use_bf16 as use_bf16
from fgdd.utils.seeding import STUDENT_CUTMIX, generator


def rded_lr_factor(epoch: int, epochs: int) -> float:
    # RDED's cosine covers only a quarter period: the LR falls from 1x to 0.5x at the last epoch, never to 0
    if epoch > epochs:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs / 2))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # RDED's get_parameters: decay only multi-dimensional "weight" tensors (conv / linear kernels); biases and
    # norm scales (1-d) are not decayed
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if "weight" in name and p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


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


def validation_epochs(epochs: int, eval_every: int, tail_fraction: float) -> list[int]:
    # 0-based epochs, RDED's rule: every eval_every-th epoch strictly after (1 - tail_fraction) of training
    # (epoch > 0.8 * epochs for 300 epochs: 249, 259, ..., 299), plus always the final epoch (the primary number)
    start = epochs - epochs * tail_fraction
    tail = {e for e in range(epochs) if (e + 1) % eval_every == 0 and e > start}
    return sorted(tail | {epochs - 1})


class TailValidationSchedule(Callback):
    """Runs Lightning's validation loop only on the given epochs, so early epochs pay no val-set loading."""

    def __init__(self, epochs: list[int]) -> None:
        self.epochs = set(epochs)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning checks (current_epoch + 1) % check_val_every_n_epoch == 0 at each epoch end; current_epoch + 2
        # never divides current_epoch + 1
        epoch = trainer.current_epoch
        trainer.check_val_every_n_epoch = 1 if epoch in self.epochs else epoch + 2


class SoftLabelStudent(L.LightningModule):
    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        *,
        temperature: float,
        lr: float,
        weight_decay: float,
        epochs: int,
        seed: int,
        use_cutmix: bool = True,
        hard_labels: bool = False,
        soft_label_store: SoftLabelStore | None = None,
        device_batches: DeviceBatches | None = None,  # the set's pixels + augmentation, applied where training runs
        channels_last: bool = False,
        precision: str = "fp32",  # auto | fp32 | bf16, resolved at fit start (fgdd.utils.precision)
        extra_student_forward: bool = False,  # RDED's code: one more no-grad student forward (train mode) per step
        mean: Sequence[float] | None = None,  # validation batches arrive as uint8 and are normalised here
        std: Sequence[float] | None = None,
        compile_mode: str | None = None,  # torch.compile mode for student and teacher forwards (None: eager)
        optimizer: str = "adamw",  # adamw: RDED's; sgd: DD-Ranking's real-data recipe (fgdd.evaluation.optim)
        momentum: float = 0.9,  # sgd only
        lr_step: int | None = None,  # None: RDED's cosine; N: the rate x0.1 every N epochs (StepLR)
    ) -> None:
        super().__init__()
        # settings are checked by fgdd.evaluation.settings.StudentSettings; what is left here is the teacher's presence
        if hard_labels and teacher is not None:
            raise ConfigError("hard_labels=True trains on the distilled labels; pass teacher=None")
        if not hard_labels and teacher is None:
            raise ConfigError("soft-label training needs a teacher (or set hard_labels=True)")
        # channels_last: the student's weights and every batch in NHWC memory order (faster convolution kernels;
        # the same arithmetic up to float rounding). The teacher's weights are not touched: a channels_last batch
        # already selects the NHWC kernels for it.
        self.channels_last = channels_last
        self.student = student.to(memory_format=torch.channels_last) if channels_last else student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        self.temperature = temperature
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.seed = seed
        self.use_cutmix = use_cutmix
        self.hard_labels = hard_labels
        self.soft_label_store = soft_label_store
        # the distilled set (N, 3, h, w) uint8 and its augmentation, moved to the training device at fit start; a plain
        # attribute, not a buffer: DDP would broadcast a buffer on every step and the state dict would carry it
        self.device_batches = device_batches
        self.precision = precision
        self.resolved_precision: Resolved = "fp32"  # `precision` resolved on the training device at fit start
        self.extra_student_forward = extra_student_forward
        self.mean = list(mean) if mean is not None else None
        self.std = list(std) if std is not None else None
        self.compile_mode = compile_mode
        self.optimizer, self.momentum, self.lr_step = optimizer, momentum, lr_step
        # the callables the steps run: the modules themselves, or torch.compile wrappers sharing their parameters
        # (kept in a plain dict so that the wrappers are not registered as submodules twice in the state dict)
        self._forward: dict[str, nn.Module] = {"student": self.student}
        if teacher is not None:
            self._forward["teacher"] = teacher
        self.save_hyperparameters(ignore=["student", "teacher", "soft_label_store", "device_batches"])
        self.val_history: list[dict[str, float]] = []  # one entry per validation: epoch, top1, top5 (fractions)
        self._mix_generator: torch.Generator | None = None
        self._val_counts: Tensor | None = None

    def train(self, mode: bool = True) -> SoftLabelStudent:
        # Lightning switches the whole module to train mode each epoch; the teacher must stay in eval mode
        # (frozen batch-norm statistics, as RDED's teacher_model.eval())
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        return self.student(images)

    def on_fit_start(self) -> None:
        # one CutMix stream per rank, so ranks do not draw identical boxes
        self._mix_generator = generator(self.seed, STUDENT_CUTMIX, self.global_rank)
        self.resolved_precision = resolve_precision(self.precision, self.device, stage="student")
        self.hparams["bf16"] = self.bf16  # what `precision` resolved to here, for the logger's hparams
        if self.compile_mode is not None:
            self._forward = {name: torch.compile(module, mode=self.compile_mode)
                             for name, module in self._forward.items()}
        if self.device_batches is not None:
            self.device_batches.to(self.device)
        if self.soft_label_store is not None and self.trainer.world_size > 1:
            raise ConfigError("evaluator.soft_labels=stored replays one device's batches; use online with ddp")

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        # the device paths' training batches hold only the augmentation choices: the images are made here, where the
        # pixels are (validation batches are images already)
        if self.device_batches is not None and DeviceBatches.holds_choices(batch):
            return self.device_batches.materialise(batch)  # type: ignore[arg-type]
        return batch

    def _mix(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, float]:
        assert self._mix_generator is not None
        if self.use_cutmix:
            return cutmix(images, self._mix_generator)
        return images, torch.arange(len(labels), device=labels.device), 1.0

    def _stored_soft_label_loss(self, images: Tensor, labels: Tensor, batch_idx: int) -> Tensor:
        store = self.soft_label_store
        assert store is not None and self.teacher is not None
        n, _, h, w = images.shape
        if store.recording(self.current_epoch):
            assert self._mix_generator is not None
            if self.use_cutmix:
                perm, box, _ = cutmix_params(n, h, w, self._mix_generator)  # the same draws as the online path
            else:
                perm, box = torch.arange(n), (0, 0, 0, 0)
            images = apply_cutmix(images, perm, box)
            with torch.no_grad():
                teacher_logits = self._forward["teacher"](images)  # (n, k): the only teacher forwards
            targets = store.record(self.current_epoch, batch_idx, labels, perm, box, teacher_logits)
        else:
            perm, box, targets = store.replay(self.current_epoch, batch_idx, labels)
            images = apply_cutmix(images, perm, box)
        return soft_target_kl(self._forward["student"](images), targets.to(images.device), self.temperature)

    def _layout(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @property
    def bf16(self) -> bool:
        return self.resolved_precision == "bf16"

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.resolved_precision, self.device)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch  # (n, c, h, w), (n,)
        images = self._layout(images)
        if self.soft_label_store is not None:
            with self._autocast():
                loss = self._stored_soft_label_loss(images, labels, batch_idx)
        else:
            images, perm, lam = self._mix(images, labels)
            with self._autocast():
                if self.extra_student_forward:
                    # RDED's loop runs the student on the batch without gradients (in train mode) before the
                    # teacher labels it: batch-norm running statistics move twice per step. Off by default.
                    with torch.no_grad():
                        self._forward["student"](images)
                logits = self._forward["student"](images)  # (n, k)
                if self.hard_labels:
                    loss = mixed_label_ce(logits, labels, perm, lam)
                else:
                    assert self.teacher is not None
                    with torch.no_grad():
                        teacher_logits = self._forward["teacher"](images)  # (n, k), online on the mixed batch
                    loss = soft_label_kl(logits, teacher_logits, self.temperature)
        self.log("student/train_loss", loss.detach(), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels), sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("student/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(3, device=self.device, dtype=torch.float64)  # top-1 hits, top-5 hits, seen

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch  # (n, 3, s, s) uint8 (fgdd.evaluation.eval_images), (n,)
        if self.mean is None or self.std is None:
            raise ConfigError("validation needs the dataset's mean and std (SoftLabelStudent(mean=..., std=...))")
        images = self._layout(normalise(images, self.mean, self.std))
        with self._autocast():
            logits = self._forward["student"](images)  # (n, k)
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices.eq(labels[:, None])  # (n, k)
        assert self._val_counts is not None
        seen = torch.tensor(len(labels), device=hits.device)
        self._val_counts += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum(), seen]).to(self._val_counts)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        assert self._val_counts is not None
        counts = self.trainer.strategy.reduce(self._val_counts, reduce_op="sum")
        top1, top5 = (counts[0] / counts[2]).item(), (counts[1] / counts[2]).item()
        self.val_history.append({"epoch": float(self.current_epoch), "top1": top1, "top5": top5})
        self.log("student/val_top1", top1, prog_bar=True)
        self.log("student/val_top5", top5)

    def configure_optimizers(self) -> dict:
        return configure(self.student, optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
                         momentum=self.momentum, epochs=self.epochs, lr_step=self.lr_step)
