"""Generic class-folder dataset: `<root>/<subdir>/{train_dir,val_dir}/<class>/*.<image ext>` (ImageNet layout)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, ImageSplit, folder_split
from fgdd.data.download import no_download


class ImageFolderDataset(ImageDataset):
    def __init__(
        self,
        root: str | None,
        classes: Sequence[str] | None,
        class_names: Sequence[str] | None = None,
        input_size: int = 224,
        factor: int = 2,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        subdir: str = "imagefolder",
        train_dir: str = "train",
        val_dir: str = "val",
        name: str | None = None,
        **options: Any,  # ImageDataset's: max_bad_fraction, allow_extra_folders (ImageNet-100), aspect, limit_per_class
    ) -> None:
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, name or subdir,
                         **options)
        self.subdir = subdir
        self.split_dirs = {"train": train_dir, "val": val_dir}

    @property
    def dataset_dir(self) -> Path:
        return self.data_root / self.subdir

    @property
    def layout(self) -> str:
        return f"{self.split_dirs['train']}/<class>/*.jpg and {self.split_dirs['val']}/<class>/*.jpg"

    def _build_split(self, which: str) -> ImageSplit:
        split_root = self.dataset_dir / self.split_dirs[which]
        if not split_root.is_dir():
            if self.download:
                raise no_download(self.name, self.dataset_dir, self.layout)
            raise self._not_found(split_root, self.layout)
        return folder_split(split_root, self.classes, self.dataset_dir, allow_extra=self.allow_extra_folders)
