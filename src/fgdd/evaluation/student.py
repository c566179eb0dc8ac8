"""The student side of RDED's relabel + eval: the training loop, each batch's loss from a label source
(fgdd.evaluation.labels: the frozen teacher online on every CutMix batch, stored rounds, or hard labels)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from fgdd.errors import ConfigError

# the losses live with their label sources (fgdd.evaluation.labels): still importable from here
from fgdd.evaluation.labels import LabelSource
from fgdd.evaluation.labels import mixed_label_ce as mixed_label_ce
from fgdd.evaluation.labels import soft_label_kl as soft_label_kl
from fgdd.evaluation.labels import soft_target_kl as soft_target_kl
from fgdd.evaluation.optim import configure
from fgdd.evaluation.settings import StudentSettings
from fgdd.training.batches import DeviceBatches
from fgdd.utils.choices import plain
from fgdd.utils.normalise import normalise

# PRECISIONS, native_bf16 and use_bf16 lived here before fgdd.utils.precision: still importable from here
from fgdd.utils.precision import PRECISIONS as PRECISIONS
from fgdd.utils.precision import Resolved, autocast, resolve_precision
from fgdd.utils.precision import native_bf16 as native_bf16
from fgdd.utils.precision import use_bf16 as use_bf16
from fgdd.utils.seeding import STUDENT_CUTMIX, generator

RESUME_STATE = "fgdd_student"  # the checkpoint's entry for what Lightning does not save (SoftLabelStudent)


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


def validation_epochs(epochs: int, eval_every: int, tail_fraction: float) -> list[int]:
    # 0-based epochs, RDED's rule: every eval_every-th epoch strictly after (1 - tail_fraction) of training
    # (epoch > 0.8 * epochs for 300 epochs: 249, 259, ..., 299), plus always the final epoch (the primary number)
    start = epochs - epochs * tail_fraction
    tail = {e for e in range(epochs) if (e + 1) % eval_every == 0 and e > start}
    return sorted(tail | {epochs - 1})


class SoftLabelStudent(L.LightningModule):
    """The student's training loop: each batch's loss from its label source (fgdd.evaluation.labels), validation
    on the val split at the end of the epochs ``validate_on`` (RDED's tail, ``validation_epochs``); ``settings``
    give the optimizer, precision, memory layout and compile mode.

    The validations are the module's, not Lightning's validation loop: Lightning validates periodically from the
    first epoch (``check_val_every_n_epoch``) and has no setting for a set of epochs; the schedule is fixed here,
    before training, instead of changing the Trainer's setting while it runs."""

    def __init__(
        self,
        student: nn.Module,
        labels: LabelSource,  # online teacher, stored rounds or hard labels: the evaluator's choice
        settings: StudentSettings,
        *,
        lr: float,
        seed: int,
        device_batches: DeviceBatches | None = None,  # the set's pixels + augmentation, applied where training runs
        val_batches: Iterable[tuple[Tensor, Tensor]] = (),  # uint8 images (this rank's share), labels
        validate_on: Collection[int] = (),  # 0-based epochs whose end validates
        mean: Sequence[float] | None = None,  # validation batches arrive as uint8 and are normalised here
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        # channels_last: the student's weights and every batch in NHWC memory order (faster convolution kernels;
        # the same arithmetic up to float rounding). The teacher's weights are not touched: a channels_last batch
        # already selects the NHWC kernels for it.
        self.settings = settings
        self.channels_last = settings.channels_last
        self.student = student.to(memory_format=torch.channels_last) if self.channels_last else student
        self.labels = labels
        self.teacher = labels.teacher  # a submodule: it moves with the module (frozen, eval mode)
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
            self.teacher.eval()
        self.lr = lr
        self.seed = seed
        # the distilled set (N, 3, h, w) uint8 and its augmentation, moved to the training device at fit start; a plain
        # attribute, not a buffer: DDP would broadcast a buffer on every step and the state dict would carry it
        self.device_batches = device_batches
        self.val_batches = val_batches
        self.validate_on = frozenset(validate_on)
        self.resolved_precision: Resolved = "fp32"  # settings.precision resolved on the training device at fit start
        self.mean = list(mean) if mean is not None else None
        self.std = list(std) if std is not None else None
        # the callables the steps run: the modules themselves, or torch.compile wrappers sharing their parameters
        # (kept in a plain dict so that the wrappers are not registered as submodules twice in the state dict)
        self._forward: dict[str, nn.Module] = {"student": self.student}
        if self.teacher is not None:
            self._forward["teacher"] = self.teacher
        self.save_hyperparameters(ignore=["student", "labels", "settings", "device_batches", "val_batches",
                                          "validate_on"])
        self.hparams.update(plain(settings))
        self.val_history: list[dict[str, float]] = []  # one entry per validation: epoch, top1, top5 (fractions)
        self._mix: torch.Generator | None = None  # this rank's CutMix stream, made at fit start
        self._resumed: dict[str, Any] | None = None  # a checkpoint's RESUME_STATE, applied at fit start

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
        self.resolved_precision = resolve_precision(str(self.settings.precision), self.device, stage="student")
        self.hparams["bf16"] = self.bf16  # what `precision` resolved to here, for the logger's hparams
        if self.settings.compile is not None:
            self._forward = {name: torch.compile(module, mode=str(self.settings.compile))
                             for name, module in self._forward.items()}
        if self.device_batches is not None:
            self.device_batches.to(self.device)
        # one CutMix stream per rank, so ranks do not draw identical boxes
        self._mix = generator(self.seed, STUDENT_CUTMIX, self.global_rank)
        if self._resumed is not None:  # Lightning loads a checkpoint (on_load_checkpoint) before fit start
            self._mix.set_state(self._resumed["mix"][self.global_rank])
            torch.set_rng_state(self._resumed["torch"])
            self.val_history = list(self._resumed["val_history"])
        self.labels.start(self._mix, self._forward.get("teacher"), self.trainer.world_size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds what a resumed training needs beyond Lightning's weights, optimizer and schedule: the validations so
        far, every rank's CutMix stream and the global RNG; leaves out the frozen teacher (the run has it)."""
        assert self._mix is not None, "checkpoints are saved while fitting, after on_fit_start made the stream"
        mix = self._mix.get_state()  # (n,) uint8
        if self.trainer.world_size > 1:  # every rank calls this hook; rank 0 writes the file
            gathered = self.all_gather(mix.to(self.device)).cpu()  # (world, n)
            streams = [row.clone() for row in gathered]
        else:
            streams = [mix]
        checkpoint[RESUME_STATE] = {"val_history": self.val_history, "mix": streams, "torch": torch.get_rng_state()}
        if self.teacher is not None:
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if not k.startswith("teacher.")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(RESUME_STATE)
        if state is None or len(state["mix"]) != self.trainer.world_size:
            raise ConfigError(f"this student checkpoint was not written by this training (it holds "
                              f"{'no fgdd state' if state is None else str(len(state['mix'])) + ' ranks'}); "
                              "move it away to train the student from the start")
        self._resumed = state
        if self.teacher is not None:  # the teacher was left out of the file: its keys back, as they are now
            checkpoint["state_dict"].update({f"teacher.{k}": v for k, v in self.teacher.state_dict().items()})

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        # the device paths' training batches hold only the augmentation choices: the images are made here, where the
        # pixels are (validation batches are images already)
        if self.device_batches is not None and DeviceBatches.holds_choices(batch):
            return self.device_batches.materialise(batch)  # type: ignore[arg-type]
        return batch

    def _layout(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    @property
    def bf16(self) -> bool:
        return self.resolved_precision == "bf16"

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.resolved_precision, self.device)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch  # (n, c, h, w), (n,)
        with self._autocast():
            loss = self.labels.loss(self._forward["student"], self._layout(images), labels, batch_idx,
                                    self.current_epoch)
        self.log("student/train_loss", loss.detach(), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(labels), sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("student/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)
        if self.current_epoch in self.validate_on:
            self.validate()

    def validate(self) -> None:
        """Top-1 and top-5 on the val split, summed over the ranks, appended to ``val_history`` and logged; as
        Lightning's validation loop ran it: eval mode, no autograd, the Trainer's precision context."""
        if self.mean is None or self.std is None:
            raise ConfigError("validation needs the dataset's mean and std (SoftLabelStudent(mean=..., std=...))")
        self._rank0_buffers()
        training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                counts = torch.zeros(3, device=self.device, dtype=torch.float64)  # top-1 hits, top-5 hits, seen
                for images, labels in self.val_batches:  # (n, 3, s, s) uint8 (fgdd.evaluation.eval_images), (n,)
                    images, labels = images.to(self.device), labels.to(self.device)
                    images = self._layout(normalise(images, self.mean, self.std))
                    with self.trainer.precision_plugin.val_step_context(), self._autocast():
                        logits = self._forward["student"](images)  # (n, k)
                    k = min(5, logits.shape[1])
                    hits = logits.topk(k, dim=1).indices.eq(labels[:, None])  # (n, k)
                    seen = torch.tensor(len(labels), device=hits.device)
                    counts += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum(), seen]).to(counts)
                counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        finally:
            self.train(training)
        top1, top5 = (counts[0] / counts[2]).item(), (counts[1] / counts[2]).item()
        self.val_history.append({"epoch": float(self.current_epoch), "top1": top1, "top5": top5})
        self.log("student/val_top1", top1, prog_bar=True)
        self.log("student/val_top5", top5)

    def _rank0_buffers(self) -> None:
        # under DDP, Lightning's validation loop ran through DDP's forward, which first broadcasts rank 0's buffers
        # (batch-norm statistics, updated by each rank's last batch) to every rank: every rank validates that student
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.student.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def configure_optimizers(self) -> dict:
        s = self.settings
        return configure(self.student, optimizer=str(s.optimizer), lr=self.lr, weight_decay=s.weight_decay,
                         momentum=s.momentum, epochs=s.epochs, lr_step=s.lr_step)
