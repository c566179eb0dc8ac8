"""Loading the distilled set for student training so that every augmentation is a function of (seed, epoch, index),
whatever the number of workers (the batched pipeline's batches come from fgdd.training.batches)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from fgdd.errors import ConfigError
from fgdd.evaluation.augment import StudentTrainTransform, pil_to_uint8
from fgdd.utils.seeding import STUDENT_EPOCH, generator


class SeededEpochSampler(Sampler[tuple[int, int]]):
    """Yields (index, augmentation seed): a fresh shuffle and fresh per-sample seeds each epoch, all drawn from
    the run seed, so the augmentations do not depend on worker count or on which worker loads a sample.
    With ``rounds``, epoch e repeats epoch e % rounds (stored soft labels replay those rounds)."""

    def __init__(self, size: int, seed: int, rounds: int | None = None) -> None:
        if rounds is not None and rounds < 1:
            raise ConfigError(f"sampler rounds must be >= 1 or None, got {rounds}")
        self.size = size
        self.seed = seed
        self.rounds = rounds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        # Lightning calls it before each epoch: a training resumed at epoch e draws epoch e's order and seeds
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = generator(self.seed, STUDENT_EPOCH, self.epoch if self.rounds is None else self.epoch % self.rounds)
        self.epoch += 1
        order = torch.randperm(self.size, generator=g)
        seeds = torch.randint(0, 2**62, (self.size,), generator=g)
        return iter(zip(order.tolist(), seeds.tolist()))

    def __len__(self) -> int:
        return self.size


class AugmentedDistilledSet(Dataset):
    """The distilled set held in memory as uint8 tensors (RDED loads it with mem=True as well)."""

    def __init__(self, images: list[Tensor], labels: list[int], transform: StudentTrainTransform) -> None:
        self.images = images  # each (3, h, w) uint8
        self.labels = labels
        self.transform = transform

    @classmethod
    def preload(cls, distilled: Dataset, num_classes: int, transform: StudentTrainTransform) -> AugmentedDistilledSet:
        images, labels = [], []
        for i in range(len(distilled)):  # type: ignore[arg-type]
            image, label = distilled[i]
            if not isinstance(image, Image.Image):
                raise ConfigError(
                    f"the distilled set must yield (PIL.Image, label); item {i} is {type(image).__name__}. "
                    "Pass the DistilledSet without a transform."
                )
            if not 0 <= int(label) < num_classes:
                raise ConfigError(f"distilled item {i} has label {label}, outside 0..{num_classes - 1}")
            images.append(pil_to_uint8(image))
            labels.append(int(label))
        if not images:
            raise ConfigError("the distilled set is empty; nothing to train the student on")
        return cls(images, labels, transform)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = key
        g = torch.Generator().manual_seed(seed)
        return self.transform(self.images[index], g), self.labels[index]

    def stacked(self, setting: str, remedy: str) -> Tensor:
        """(N, 3, h, w) uint8: the whole set in one tensor, for augmenting batches on the device; ``setting`` and
        ``remedy`` name the setting that needs it and the one to use instead, for the error on mixed sizes."""
        sizes = sorted({tuple(image.shape) for image in self.images})
        if len(sizes) > 1:
            raise ConfigError(
                f"{setting} needs distilled images of one size; found {sizes[:4]}. Set {remedy} (images are then "
                "augmented one by one in loader workers)"
            )
        return torch.stack(self.images)


class AugmentParamsSet(Dataset):
    """The device path: per sample only the random choices (drawn exactly as ``AugmentedDistilledSet`` draws them,
    from the same per-sample seed); the pixels stay on the device and ``StudentTrainTransform.apply_batch`` applies
    the choices to a whole batch there. Yields ({"index", "rows", "cols", "box", "flip"}, label)."""

    def __init__(self, height: int, width: int, labels: list[int], transform: StudentTrainTransform) -> None:
        self.height = height
        self.width = width
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict[str, Tensor], int]:
        index, seed = key
        params = self.transform.draw(self.height, self.width, torch.Generator().manual_seed(seed))
        return {"index": torch.tensor(index), **params}, self.labels[index]
