"""CIFAR-10/100 from torchvision's pickled batches, or from folders of images (train/<class>, test/<class>)."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD, ImageSplit, class_mismatch, folder_split
from fgdd.data.download import fetch_folder
from fgdd.data.folder import ImageFolderDataset
from fgdd.data.images import ImageInfo
from fgdd.errors import CorruptImageError


class PickledImageSplit(ImageSplit):
    """Images held in memory as a (n, h, w, 3) uint8 array; sample paths are virtual (`<split>/<index>`)."""

    def __init__(
        self,
        root: Path,
        classes: Sequence[str],
        pixels: np.ndarray,
        labels: Sequence[int],
        archive_index: Sequence[int],
        transform: Callable | None = None,
        base: Path | None = None,
    ) -> None:
        # The virtual name is the image's position in the original archive, so manifests can point back to it.
        samples = [(root / f"{j:05d}", int(label)) for j, label in zip(archive_index, labels, strict=True)]
        super().__init__(root, classes, samples, transform=transform, base=base)
        self.pixels = pixels  # (n, h, w, 3) uint8

    def load_rgb(self, i: int) -> Image.Image:
        return Image.fromarray(self.pixels[i], mode="RGB")

    def inspect(self) -> list[ImageInfo]:
        _, height, width, _ = self.pixels.shape  # decoded already: every image is readable
        return [ImageInfo((width, height), "RGB", "pickled array")] * len(self)

    def subset(self, keep: Sequence[int]) -> PickledImageSplit:
        other = super().subset(keep)
        other.pixels = self.pixels[np.asarray(keep, dtype=np.int64)]  # (len(keep), h, w, 3)
        return other

    def content_sha256(self) -> str:
        # the virtual sample paths have no files: the hash covers the pixels and labels themselves
        digest = hashlib.sha256(np.ascontiguousarray(self.pixels).tobytes())
        digest.update(np.asarray(self.targets, dtype=np.int64).tobytes())
        return digest.hexdigest()


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise CorruptImageError(
            f"cannot read CIFAR batch {path}: {error}. Delete the folder {path.parent} and download/unpack it again."
        ) from error


class CIFAR10Dataset(ImageFolderDataset):
    """The class-folder layout of ImageFolderDataset, or torchvision's pickled batches where they are."""

    archive_folder = "cifar-10-batches-py"
    batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "val": ["test_batch"]}
    meta_file, meta_key, label_key = "batches.meta", "label_names", "labels"
    torchvision_class = "CIFAR10"

    def __init__(self, root: str | None, classes: Sequence[str] | None, class_names: Sequence[str] | None = None,
                 input_size: int = 32, factor: int = 1, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, download: bool = False, subdir: str = "cifar10",
                 train_dir: str = "train", val_dir: str = "test", name: str | None = None, **options: Any) -> None:
        # ImageFolderDataset's, with CIFAR's defaults (options: ImageDataset's max_bad_fraction, allow_extra_folders,
        # aspect, limit_per_class)
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, subdir, train_dir,
                         val_dir, name, **options)

    @property
    def layout(self) -> str:
        return (
            f"{self.archive_folder}/ (torchvision's pickled batches) or "
            f"{self.split_dirs['train']}/<class>/*.jpg + {self.split_dirs['val']}/<class>/*.jpg"
        )

    def _build_split(self, which: str) -> ImageSplit:
        pickled = self.dataset_dir / self.archive_folder
        folders = self.dataset_dir / self.split_dirs[which]
        if not pickled.is_dir() and not folders.is_dir():
            if not self.download:
                raise self._not_found(self.dataset_dir, self.layout, "; or set download=true")
            self._download()
        if pickled.is_dir():
            return self._pickled_split(pickled, which)
        return folder_split(folders, self.classes, self.dataset_dir, allow_extra=self.allow_extra_folders)

    def _download(self) -> None:
        import torchvision.datasets as tvd

        source = getattr(tvd, self.torchvision_class)
        fetch_folder(
            source.url,
            source.tgz_md5,
            self.archive_folder,
            self.dataset_dir / self.archive_folder,
            what=self.name,
            layout=f"{self.archive_folder}/ (from {source.filename})",
        )

    def _pickled_split(self, folder: Path, which: str) -> PickledImageSplit:
        names = list(_unpickle(folder / self.meta_file)[self.meta_key])
        wanted = set(self.classes)
        used = [n for n in names if n in wanted] if self.allow_extra_folders else names
        if used != self.classes:
            # Pickled labels are indices into the archive's own list, so that list fixes the label order.
            raise class_mismatch(f"{folder / self.meta_file} label names vs the dataset config's `classes`",
                                 self.classes, names, self.allow_extra_folders,
                                 order=f"the order of {self.meta_key} in {self.meta_file}")
        label_of = {names.index(c): label for label, c in enumerate(self.classes)}  # archive label -> ours
        pixels, labels = [], []
        for batch in self.batches[which]:
            entry = _unpickle(folder / batch)
            pixels.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(int(x) for x in entry[self.label_key])
        data = np.ascontiguousarray(np.concatenate(pixels))  # (n, 32, 32, 3)
        kept = np.array([i for i, label in enumerate(labels) if label in label_of], dtype=np.int64)
        ours = np.array([label_of[labels[i]] for i in kept], dtype=np.int64)
        # Stable sort by label: sample order is (label, position in the archive), like sorted class folders.
        order = kept[np.argsort(ours, kind="stable")]
        split = PickledImageSplit(
            self.dataset_dir / self.split_dirs[which],
            self.classes,
            data[order],
            [label_of[labels[i]] for i in order],
            order.tolist(),
            base=self.dataset_dir,
        )
        split.ignored_classes = [n for n in names if n not in wanted]
        return split


class CIFAR100Dataset(CIFAR10Dataset):
    archive_folder = "cifar-100-python"
    batches = {"train": ["train"], "val": ["test"]}
    meta_file, meta_key, label_key = "meta", "fine_label_names", "fine_labels"
    torchvision_class = "CIFAR100"

    def __init__(self, root: str | None, classes: Sequence[str] | None, class_names: Sequence[str] | None = None,
                 input_size: int = 32, factor: int = 1, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, download: bool = False, subdir: str = "cifar100",
                 train_dir: str = "train", val_dir: str = "test", name: str | None = None, **options: Any) -> None:
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, subdir,
                         train_dir, val_dir, name, **options)
