"""Training batches made on the training device: the one batch source of the teacher's and the student's training.

A training set is held as one uint8 tensor ``pixels`` (N, 3, h, w) on the device. Each epoch, ``BatchedEpochs``
draws the order and every sample's augmentation choices in a few vectorised calls from one generator seeded by
(seed, stream, epoch) and yields ``(params, labels)`` batches (CPU tensors, cheap to move); on the device,
``DeviceBatches.materialise`` turns a batch's choices into images with one ``DeviceAugment.apply_batch``. No loader
workers and no per-sample Python: the cost of a batch is a few batched tensor ops, whatever its crop sizes.

The protocol a ``DeviceAugment`` follows (fgdd.evaluation.augment.BatchAugment: RDED's tile shuffle +
RandomResizedCrop + flip, and torchvision's RandomResizedCrop + flip at factor 1; ``PadCropFlip`` below):
``draw(n, h, w, generator) -> params`` (each a tensor with a leading n) and
``apply_batch(pixels, index, params) -> (n, 3, out, out)`` normalised float32."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import lightning as L
import torch
from torch import Tensor

from fgdd.errors import ConfigError
from fgdd.utils.distributed import rank_and_world
from fgdd.utils.normalise import normalise
from fgdd.utils.seeding import generator

Params = dict[str, Tensor]


class DeviceAugment(Protocol):
    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> Params: ...

    def apply_batch(self, pixels: Tensor, index: Tensor, params: Params) -> Tensor: ...


class BatchedEpochs:
    """The batched pipeline's train "loader": yields (params with "index", labels) batches of one epoch per pass.
    Under DDP each rank takes every world-th sample of the (padded) epoch order, as DistributedSampler does, so ranks
    run the same number of steps. With ``rounds``, epoch e repeats epoch e % rounds exactly (stored soft labels
    replay those rounds). ``epoch`` counts passes; a resumed training sets it (``set_epoch``) so that epoch e draws
    what an uninterrupted training drew."""

    def __init__(
        self, labels: Tensor, height: int, width: int, augment: DeviceAugment, batch_size: int, seed: int,
        stream: str, rounds: int | None = None,
    ) -> None:
        if rounds is not None and rounds < 1:
            raise ConfigError(f"rounds must be >= 1 or None, got {rounds}")
        self.labels = labels  # (N,) int64
        self.height, self.width = height, width
        self.augment = augment
        self.batch_size = batch_size
        self.seed = seed
        self.stream = stream  # the seed stream's name (fgdd.utils.seeding): STUDENT_EPOCH, TEACHER_EPOCH
        self.rounds = rounds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _positions(self) -> int:
        _, world = rank_and_world()
        return -(-len(self.labels) // world)  # samples per rank, the epoch padded to a multiple of the world size

    def __len__(self) -> int:
        return -(-self._positions() // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Params, Tensor]]:
        g = generator(self.seed, self.stream, self.epoch if self.rounds is None else self.epoch % self.rounds)
        self.epoch += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=g)  # (N,)
        params = self.augment.draw(n, self.height, self.width, g)  # per position in `order`, each with leading N
        rank, world = rank_and_world()
        padded = torch.arange(self._positions() * world) % n  # positions, wrapped like DistributedSampler's padding
        mine = padded[rank::world]  # (N / world,)
        for start in range(0, len(mine), self.batch_size):
            positions = mine[start : start + self.batch_size]
            index = order[positions]
            yield {"index": index, **{k: v[positions] for k, v in params.items()}}, self.labels[index]


class DeviceBatches:
    """The pixels where training runs and the augmentation that makes a batch of them: what a LightningModule holds
    to turn ``BatchedEpochs``'s batches into images after Lightning moved them (``on_after_batch_transfer``)."""

    def __init__(self, pixels: Tensor, augment: DeviceAugment) -> None:
        if pixels.dtype != torch.uint8 or pixels.ndim != 4:
            raise ConfigError(f"batched training needs (N, 3, h, w) uint8 pixels, got {tuple(pixels.shape)} "
                              f"{pixels.dtype}")
        self.pixels = pixels
        self.augment = augment

    def to(self, device: torch.device) -> DeviceBatches:
        self.pixels = self.pixels.to(device)
        return self

    @staticmethod
    def holds_choices(batch: object) -> bool:
        # a BatchedEpochs batch: (params dict, labels); validation batches are (images, labels)
        return isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[0], dict)

    def materialise(self, batch: tuple[Params, Tensor]) -> tuple[Tensor, Tensor]:
        params, labels = batch
        images = self.augment.apply_batch(self.pixels, params["index"], params)  # (n, 3, s, s) float32
        return images, labels


def reflect_index(positions: Tensor, size: int) -> Tensor:
    # torch/numpy "reflect" padding: -1 -> 1, size -> size - 2 (the edge pixel is not repeated)
    positions = positions.abs()
    return torch.where(positions >= size, 2 * (size - 1) - positions, positions)


class PadCropFlip:
    """The CIFAR-style teacher augmentation on a batch: reflect-pad by ``padding``, a random ``size`` crop, horizontal
    flip, normalise (fgdd.data.transforms.teacher_train_transform after its square resize, which the stored pixels
    already hold). Pure indexing: the same uint8 values as the per-image transform for the same choices."""

    def __init__(self, size: int, padding: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = size
        self.padding = padding
        self.mean = list(mean)
        self.std = list(std)

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        # (n,) crop offsets into the padded image (torchvision's RandomCrop: uniform over every valid offset), flips
        top = torch.randint(0, height + 2 * self.padding - self.size + 1, (n,), generator=generator)
        left = torch.randint(0, width + 2 * self.padding - self.size + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        return {"top": top, "left": left, "flip": flip}

    def source_indices(self, params: Params, height: int, width: int) -> tuple[Tensor, Tensor]:
        """(n, size) source rows and (n, size) source columns of each output pixel, padding and flip included."""
        steps = torch.arange(self.size)
        rows = reflect_index(params["top"][:, None] + steps - self.padding, height)  # (n, size)
        cols = reflect_index(params["left"][:, None] + steps - self.padding, width)  # (n, size)
        cols = torch.where(params["flip"][:, None], cols.flip(1), cols)
        return rows, cols

    def apply_batch(self, pixels: Tensor, index: Tensor, params: Params) -> Tensor:
        device = pixels.device
        _, c, h, w = pixels.shape
        rows, cols = (i.to(device) for i in self.source_indices({k: v.cpu() for k, v in params.items()}, h, w))
        x = pixels[index.to(device)]  # (n, c, h, w) uint8
        n, s = len(x), self.size
        x = x.gather(2, rows[:, None, :, None].expand(n, c, s, w))  # (n, c, s, w)
        x = x.gather(3, cols[:, None, None, :].expand(n, c, s, s))  # (n, c, s, s)
        return normalise(x, self.mean, self.std)


class EpochDraws(L.Callback):
    """Tells ``BatchedEpochs`` the trainer's epoch before
    each epoch's batches are drawn, so a training resumed from a checkpoint at epoch e draws epoch e's choices."""

    def __init__(self, epochs: BatchedEpochs) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.set_epoch(int(trainer.current_epoch))
