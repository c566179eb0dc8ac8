"""Supervised classifier training, the recipe of the reference teachers (/work/shared/teachers/README.md):
CE with label smoothing, SGD nesterov, one-cycle LR stepped per batch."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from fgdd.training.batches import DeviceBatches
from fgdd.utils.precision import Resolved, autocast

# Bump when the training code changes what a given recipe produces: it is part of the teacher cache key.
# v2: weights and batches in channels_last memory order (other kernels, so other float rounding).
TRAINING_CODE_VERSION = "classifier-v2"


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.05,  # one-cycle peak
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        label_smoothing: float = 0.1,
        device_batches: DeviceBatches | None = None,  # the batched pipeline: pixels + augmentation on the device
        precision: Resolved = "fp32",  # of the forward passes, resolved from teacher.recipe.precision
    ) -> None:
        super().__init__()
        self.model = model
        self.device_batches = device_batches
        self.precision = precision
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.label_smoothing = label_smoothing
        self.save_hyperparameters(ignore=["model", "device_batches"])

    # channels_last (NHWC) while training: the convolution kernels of CPUs (oneDNN) and GPUs (cuDNN) run faster on
    # it (BENCHMARKS.md "Stage speed"); the model is handed back in the default layout, so the checkpoint and
    # every later user see ordinary tensors (the values do not depend on the layout).
    def on_fit_start(self) -> None:
        self.model.to(memory_format=torch.channels_last)
        if self.device_batches is not None:
            self.device_batches.to(self.device)

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        # the batched pipeline's training batches hold only the augmentation choices: the images are made here, where
        # the pixels are (validation batches are images already)
        if self.device_batches is not None and DeviceBatches.holds_choices(batch):
            return self.device_batches.materialise(batch)  # type: ignore[arg-type]
        return batch


    def on_fit_end(self) -> None:
        self.model.to(memory_format=torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch  # (n, 3, s, s), (n,)
        with autocast(self.precision, self.device):
            logits = self.model(images.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        n = labels.numel()
        self.log("teacher/train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        self.log("teacher/train_top1", (logits.argmax(1) == labels).float().mean(), on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        with autocast(self.precision, self.device):
            logits = self.model(images.contiguous(memory_format=torch.channels_last))
        # weighted by batch_size, the epoch mean is the exact top-1 over the split
        correct = (logits.argmax(1) == labels).float().mean()
        self.log("teacher/val_top1", correct, on_epoch=True, prog_bar=True, batch_size=labels.numel(), sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=self.lr,
            momentum=self.momentum,
            nesterov=True,
            weight_decay=self.weight_decay,
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.lr, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
