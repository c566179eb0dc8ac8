"""The two data interfaces every stage uses: ImageSplit (one split, (image, label) pairs) and ImageDataset."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgdd.errors import ClassMismatchError, ConfigError, CorruptImageError, DatasetNotFoundError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DATA_DIR_ENV = "FGDD_DATA_DIR"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Unreadable images a split tolerates (skipped with a warning) before loading stops: RDED's selection default.
DEFAULT_MAX_BAD_FRACTION = 0.01

# Integer modes whose values span 16 bits (PNG/TIFF 16-bit grey). Pillow opens them as I;16* or I.
_WIDE_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def resolve_data_root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    raise ConfigError(
        f"no data root: set `data_root=/path/to/data` (or `dataset.root=...`) on the command line, "
        f"or export {DATA_DIR_ENV}=/path/to/data"
    )


def to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _WIDE_INT_MODES:
        # Scale the 16-bit range to 8 bits (65535 -> 255); Pillow's own convert("L") clips at 255 instead.
        values = np.asarray(image, dtype=np.int64)  # (h, w)
        grey = np.clip(np.rint(np.clip(values, 0, 65535) / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        raise ValueError("32-bit float images have no defined 8-bit range; convert the file to 8-bit PNG/JPEG")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        # Transparent pixels become black, the same value RDED pads crops with, instead of whatever colour
        # the file stored under alpha 0.
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise CorruptImageError(
            f"cannot read image {path}: {error}. Replace or delete the file (then rerun)."
        ) from error


class ImageSplit(torch.utils.data.Dataset):
    """One split: samples sorted by (label, file name); yields (transform(PIL RGB image) or image, label).

    An unreadable image (corrupt, truncated, not an image) is skipped with a warning naming it: the item is the
    next readable image of the same class, so batches keep their size and classes their share. When more than
    ``max_bad_fraction`` of the split cannot be read, loading stops with the list of files (per process: each
    loader worker counts what it has seen).
    """

    def __init__(
        self,
        root: Path,
        classes: Sequence[str],
        samples: Sequence[tuple[Path, int]],
        transform: Callable | None = None,
        base: Path | None = None,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    ) -> None:
        self.root = Path(root)
        self.max_bad_fraction = float(max_bad_fraction)
        self.unreadable: dict[str, str] = {}  # path -> error; shared with with_transform() copies
        self.classes = list(classes)
        self.samples = [(Path(p), int(label)) for p, label in samples]
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.base = Path(base) if base is not None else self.root.parent  # relpath() is relative to this
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        if len(counts) > len(self.classes):
            raise ConfigError(f"{self.root}: labels up to {len(counts) - 1} but only {len(self.classes)} classes")
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise DatasetNotFoundError(
                f"{self.root}: no images for class(es) {empty}; a class without images cannot be distilled. "
                f"Add images ({', '.join(IMAGE_EXTENSIONS)}) or remove the class from the dataset config."
            )
        self._by_class: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self._readable_image(i)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]

    def _readable_image(self, i: int) -> Image.Image:
        if str(self.samples[i][0]) not in self.unreadable:
            try:
                return self.load_rgb(i)
            except CorruptImageError as error:
                self._skip(i, error)
        same_class = self.indices_of_class(self.targets[i])
        start = same_class.index(i)
        for j in same_class[start + 1 :] + same_class[:start]:  # the class's next images, wrapping around
            if str(self.samples[j][0]) in self.unreadable:
                continue
            try:
                return self.load_rgb(j)
            except CorruptImageError as error:
                self._skip(j, error)
        raise CorruptImageError(
            f"no readable image left in class {self.classes[self.targets[i]]!r} of {self.root}; unreadable: "
            f"{sorted(self.unreadable)[:10]}"
        )

    def _skip(self, j: int, error: CorruptImageError) -> None:
        path = str(self.samples[j][0])
        self.unreadable[path] = str(error)
        log.warning("skipping unreadable image %s (%s); its class's next image takes its place", path,
                    error.__cause__ or error)
        if len(self.unreadable) > self.max_bad_fraction * len(self):
            listed = sorted(self.unreadable)
            raise CorruptImageError(
                f"{len(listed)} of {len(self)} images in {self.root} cannot be read, more than "
                f"max_bad_fraction={self.max_bad_fraction}: {listed[:10]}{' ...' if len(listed) > 10 else ''}. "
                "Replace or delete these files and rerun (or allow more: +dataset.max_bad_fraction=...)"
            )

    def load_rgb(self, i: int) -> Image.Image:
        return open_rgb(self.samples[i][0])

    def relpath(self, i: int) -> str:
        return self.samples[i][0].relative_to(self.base).as_posix()

    def content_sha256(self) -> str:
        """Hash of what the split holds: each sample's name, label, file size and modification time, so an image
        added, removed, relabelled or rewritten gives another hash (the pixels themselves are not read)."""
        digest = hashlib.sha256()
        for i, (path, label) in enumerate(self.samples):
            try:
                stat = path.stat()
                state = f"{stat.st_size}\t{stat.st_mtime_ns}"
            except FileNotFoundError:
                state = "-"
            digest.update(f"{self.relpath(i)}\t{label}\t{state}\n".encode())
        return digest.hexdigest()

    def indices_of_class(self, label: int) -> list[int]:
        if self._by_class is None:
            by_class: list[list[int]] = [[] for _ in self.classes]
            for i, target in enumerate(self.targets):
                by_class[target].append(i)
            self._by_class = by_class
        return list(self._by_class[label])

    def with_transform(self, transform: Callable | None) -> ImageSplit:
        other = copy.copy(self)  # shallow: the copy shares `unreadable` and the class index
        other.transform = transform
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, classes={len(self.classes)}, samples={len(self)})"


def _list_dir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as error:  # permission denied, I/O error, a file where a folder should be
        raise DatasetNotFoundError(
            f"cannot list {folder}: {error.strerror or error}. Check that it is a readable folder "
            f"(data_root=... or {DATA_DIR_ENV})"
        ) from error


def list_class_folders(split_root: Path) -> list[str]:
    return sorted(p.name for p in _list_dir(split_root) if p.is_dir() and not p.name.startswith("."))


def check_class_folders(split_root: Path, classes: Sequence[str], allow_extra: bool = False) -> None:
    """The config's class list must equal the sorted class folders (ImageFolder's label order).

    Sorted folder names are the order torchvision's ImageFolder (and so RDED's teachers) use; a config list in
    any other order would silently give every label to the wrong class.
    """
    found = list_class_folders(split_root)
    if allow_extra:
        found = [c for c in found if c in set(classes)]
    if found != list(classes):
        raise ClassMismatchError(
            f"class folders in {split_root} (sorted) vs the dataset config's `classes`"
            + ("" if allow_extra else "; set allow_extra_folders=true to use a subset of the folders"),
            list(classes),
            found,
        )


def folder_split(
    split_root: Path,
    classes: Sequence[str],
    base: Path,
    *,
    inner: str = "",
    allow_extra: bool = False,
    transform: Callable | None = None,
) -> ImageSplit:
    """Split from `<split_root>/<class>/<inner>/*.<image ext>`; files sorted by name inside each class."""
    if not split_root.is_dir():
        raise DatasetNotFoundError(f"split folder {split_root} does not exist")
    check_class_folders(split_root, classes, allow_extra)
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_root / name / inner if inner else split_root / name
        files = sorted(p for p in _list_dir(folder) if p.is_file() and is_image_file(p)) if folder.is_dir() else []
        if not files:
            raise DatasetNotFoundError(
                f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "a class without images cannot be distilled"
            )
        samples.extend((p, label) for p in files)
    return ImageSplit(split_root, classes, samples, transform=transform, base=base)


class ImageDataset:
    """What every conf/dataset/*.yaml instantiates: class list, protocol settings, and the two splits."""

    name: str = "dataset"

    def __init__(
        self,
        root: str | None,
        classes: Sequence[str],
        class_names: Sequence[str] | None,
        input_size: int,
        factor: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        name: str | None = None,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,  # unreadable images a split skips before it stops
    ) -> None:
        if name is not None:
            self.name = name
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ConfigError(f"{name or self.name}: max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = float(max_bad_fraction)
        self._root_setting = root
        names = list(class_names) if class_names is not None else list(classes or [])
        if classes is not None:
            _check_class_list(self.name, list(classes), names)
        self.classes = list(classes) if classes is not None else []
        self.class_names = names
        if input_size <= 0 or factor <= 0 or input_size % factor:
            raise ConfigError(f"{self.name}: input_size {input_size} must be a positive multiple of factor {factor}")
        self.input_size = int(input_size)
        self.factor = int(factor)
        self.mean = _triple("mean", mean)
        self.std = _triple("std", std)
        self.download = bool(download)
        self._splits: dict[str, ImageSplit] = {}

    @property
    def data_root(self) -> Path:
        return resolve_data_root(self._root_setting)

    def train(self) -> ImageSplit:
        return self._split("train")

    def val(self) -> ImageSplit:
        return self._split("val")

    def _split(self, which: str) -> ImageSplit:
        # Scanning a large folder is slow; every caller gets the same split (with_transform makes copies).
        if which not in self._splits:
            try:
                split = self._build_split(which)
            except OSError as error:  # unreadable folder, unwritable data root for a generated set, I/O error
                raise DatasetNotFoundError(
                    f"{self.name}: cannot read the {which} split under {self.data_root}: {error}. Check that the "
                    f"folder exists and is readable (data_root=... / dataset.root=... or {DATA_DIR_ENV})"
                ) from error
            split.max_bad_fraction = self.max_bad_fraction
            self._splits[which] = split
        return self._splits[which]

    def _build_split(self, which: str) -> ImageSplit:
        raise NotImplementedError

    def _not_found(self, path: Path, layout: str, download_hint: str = "") -> DatasetNotFoundError:
        source = "the config" if self._root_setting else f"${DATA_DIR_ENV}"
        return DatasetNotFoundError(
            f"{self.name}: no data at {path} (data root {self.data_root}, taken from {source}). "
            f"Expected layout: {layout}. Put the files there, or point the data root elsewhere "
            f"(`data_root=...` / `dataset.root=...` or {DATA_DIR_ENV}){download_hint}."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, classes={len(self.classes)}, input_size={self.input_size})"


def _check_class_list(name: str, classes: list[str], class_names: list[str]) -> None:
    if not classes:
        raise ConfigError(f"{name}: `classes` is empty")
    duplicates = sorted({c for c in classes if classes.count(c) > 1})
    if duplicates:
        raise ConfigError(f"{name}: duplicate entries in `classes`: {duplicates}")
    if len(class_names) != len(classes):
        raise ConfigError(f"{name}: {len(class_names)} class_names for {len(classes)} classes")


def _triple(what: str, values: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ConfigError(f"`{what}` needs 3 values (R, G, B), got {values}")
    return values  # type: ignore[return-value]
