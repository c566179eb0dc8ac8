"""ImageNette / ImageWoof (fast.ai's 10-class ImageNet subsets): `<subdir>/{train,val}/<wnid>/*.JPEG` at any size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD, ImageSplit
from fgdd.data.download import fetch_folder
from fgdd.data.folder import ImageFolderDataset
from fgdd.errors import ConfigError

_FASTAI_BUCKET = "https://s3.amazonaws.com/fast-ai-imageclas"


class ImagenetteDataset(ImageFolderDataset):
    """`subdir` is the unpacked archive's folder: imagenette2, imagenette2-320, imagenette2-160 (downloadable)
    or any other with the same layout (e.g. the 128 px copy imagenette2-128)."""

    archive_stem = "imagenette2"

    def __init__(
        self,
        root: str | None,
        classes: Sequence[str] | None,
        class_names: Sequence[str] | None = None,
        input_size: int = 128,
        factor: int = 2,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        subdir: str | None = None,  # None: the 128 px copy, <archive_stem>-128
        name: str | None = None,
        **options: Any,  # ImageDataset's: max_bad_fraction, allow_extra_folders, aspect, limit_per_class
    ) -> None:
        subdir = subdir or f"{self.archive_stem}-128"
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, subdir,
                         name=name or self.archive_stem.removesuffix("2"), **options)
        downloadable = self.downloadable()
        if download and subdir not in downloadable:
            raise ConfigError(
                f"{self.name}: download=true fetches one of the published archives {sorted(downloadable)}; "
                f"set subdir to one of them (got {subdir!r}), or download=false to read {subdir!r} from disk"
            )

    def downloadable(self) -> dict[str, tuple[str, str | None]]:
        """Unpacked folder name -> (archive URL, md5) of the published archives."""
        from torchvision.datasets import Imagenette

        return {Path(url).stem: (url, md5) for url, md5 in Imagenette._ARCHIVES.values()}

    def _build_split(self, which: str) -> ImageSplit:
        if self.download and not (self.dataset_dir / self.split_dirs[which]).is_dir():
            url, md5 = self.downloadable()[self.subdir]
            fetch_folder(url, md5, self.subdir, self.dataset_dir, what=self.name, layout=self.layout)
        return super()._build_split(which)

    @property
    def layout(self) -> str:
        return "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG"


class ImageWoofDataset(ImagenetteDataset):
    archive_stem = "imagewoof2"

    def downloadable(self) -> dict[str, tuple[str, str | None]]:
        # torchvision has no ImageWoof class; fast.ai publishes it beside ImageNette under the same names.
        stems = ("imagewoof2", "imagewoof2-320", "imagewoof2-160")
        return {stem: (f"{_FASTAI_BUCKET}/{stem}.tgz", None) for stem in stems}
