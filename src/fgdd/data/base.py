"""The two data interfaces every stage uses: ImageSplit (one split, (image, label) pairs) and ImageDataset."""

from __future__ import annotations

import copy
import errno
import hashlib
import logging
import math
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fgdd.data.images import IMAGE_EXTENSIONS, ImageInfo, inspect_images, is_image_file, open_rgb, to_rgb
from fgdd.data.spec import DatasetSpec
from fgdd.data.transforms import check_aspect
from fgdd.errors import ClassMismatchError, ConfigError, CorruptImageError, DatasetNotFoundError

log = logging.getLogger(__name__)

__all__ = [  # to_rgb, open_rgb and IMAGE_EXTENSIONS live in fgdd.data.images; kept importable from here
    "DATA_DIR_ENV", "DEFAULT_MAX_BAD_FRACTION", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "SPLITS",
    "ImageDataset", "ImageSplit", "check_class_folders", "class_mismatch", "folder_split",
    "is_image_file", "list_class_folders", "open_rgb", "resolve_data_root", "to_rgb",
]

DATA_DIR_ENV = "FGDD_DATA_DIR"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Unreadable images a split tolerates (skipped with a warning) before loading stops: RDED's selection default.
DEFAULT_MAX_BAD_FRACTION = 0.01
SPLITS = ("train", "val")
SORTED_ORDER = "labels follow the sorted folder names (torchvision's ImageFolder, and so RDED's teachers)"


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


class ImageSplit(torch.utils.data.Dataset):
    """One split: samples sorted by (label, file name); yields (transform(PIL RGB image) or image, label).

    ``replace_unreadable`` (the train split): an image that cannot be read is skipped with a warning naming it and
    the item is the next readable image of the same class, so batches keep their size and classes their share;
    when more than ``max_bad_fraction`` of the split cannot be read, loading stops with the list of files (per
    process: each loader worker counts what it has seen). Without it (the val split, whose unreadable files
    ImageDataset leaves out when it builds the split), reading an unreadable image is an error: an evaluation
    never counts one image twice.
    """

    def __init__(
        self,
        root: Path,
        classes: Sequence[str],
        samples: Sequence[tuple[Path, int]],
        transform: Callable | None = None,
        base: Path | None = None,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
        replace_unreadable: bool = True,
    ) -> None:
        self.root = Path(root)
        self.max_bad_fraction = float(max_bad_fraction)
        self.replace_unreadable = replace_unreadable
        self.unreadable: dict[str, str] = {}  # path -> error; shared with with_transform() copies
        self.classes = list(classes)
        self.samples = [(Path(p), int(label)) for p, label in samples]
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.base = Path(base) if base is not None else self.root.parent  # relpath() is relative to this
        self.ignored_classes: list[str] = []  # classes found beside the configured ones and left out
        self.dropped: dict[str, str] = {}  # relpath -> error: unreadable images left out of the split
        self.before_limit: dict[int, int] | None = None  # label -> images listed before limit_per_class cut them
        self._require_every_class()
        self._by_class: list[list[int]] | None = None

    def _require_every_class(self) -> None:
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes))
        if len(counts) > len(self.classes):
            raise ConfigError(f"{self.root}: labels up to {len(counts) - 1} but only {len(self.classes)} classes")
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise DatasetNotFoundError(
                f"{self.root}: no images for class(es) {empty}; a class without images cannot be distilled. "
                f"Add images ({', '.join(IMAGE_EXTENSIONS)}) or remove the class from the dataset config."
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self._readable_image(i)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]

    def _readable_image(self, i: int) -> Image.Image:
        if not self.replace_unreadable:
            return self.load_rgb(i)  # an error names the file
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
                "Replace or delete these files and rerun. `python -m fgdd.check` with this run's settings lists "
                "every unreadable file of the split and the dataset.max_bad_fraction that would tolerate them all "
                "(this count covers only the images read so far)"
            )

    def load_rgb(self, i: int) -> Image.Image:
        return open_rgb(self.samples[i][0])

    def inspect(self) -> list[ImageInfo]:
        """Header and decodability of every sample, in order (reads files, decodes JPEG at reduced scale)."""
        return inspect_images([path for path, _ in self.samples])

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

    def subset(self, keep: Sequence[int]) -> ImageSplit:
        """A split of the samples at ``keep`` (in that order), same classes and settings; every class still needs
        an image."""
        other = copy.copy(self)
        other.samples = [self.samples[i] for i in keep]
        other.targets = [self.targets[i] for i in keep]
        other.unreadable = {}
        other.ignored_classes = list(self.ignored_classes)
        other.dropped = dict(self.dropped)
        other._by_class = None
        other._require_every_class()
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, classes={len(self.classes)}, samples={len(self)})"


def tolerated_fraction(bad: int, total: int) -> float:
    """The smallest max_bad_fraction (rounded up to 3 decimals) that lets ``bad`` of ``total`` images pass."""
    return math.ceil(1000 * bad / max(total, 1)) / 1000


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


def class_mismatch(
    what: str, expected: Sequence[str], found: Sequence[str], allow_extra: bool, order: str = SORTED_ORDER
) -> ClassMismatchError:
    """The error for a configured class list that the data does not match, with the remedy that fits the case."""
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    remedies = []
    if missing:
        remedies.append("Put the missing classes there or point the data root at a complete copy (data_root=...); "
                        "a class list without them is another dataset (and needs a teacher trained on it)")
    if extra and not allow_extra:
        remedies.append("to use the configured classes and ignore the others (they are named in a warning and "
                        "recorded in the run folder's dataset.json), set dataset.allow_extra_folders=true")
    if not missing and not (extra and not allow_extra):
        remedies.append(f"List dataset.classes in the data's order: {order}")
    remedy = "; ".join(remedies)
    return ClassMismatchError(what, list(expected), list(found), remedy=remedy[0].upper() + remedy[1:] + ".")


def check_class_folders(split_root: Path, classes: Sequence[str], allow_extra: bool = False) -> list[str]:
    """The config's class list must equal the sorted class folders (ImageFolder's label order); returns the
    folders left out (``allow_extra``: the configured classes may be a subset of the folders).

    Sorted folder names are the order torchvision's ImageFolder (and so RDED's teachers) use; a config list in
    any other order would silently give every label to the wrong class.
    """
    found = list_class_folders(split_root)
    wanted = set(classes)
    used = [c for c in found if c in wanted] if allow_extra else found
    if used != list(classes):
        raise class_mismatch(f"class folders in {split_root} (sorted) vs the dataset config's `classes`", classes,
                             found, allow_extra)
    return [c for c in found if c not in wanted]


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
    ignored = check_class_folders(split_root, classes, allow_extra)
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
    split = ImageSplit(split_root, classes, samples, transform=transform, base=base)
    split.ignored_classes = ignored
    return split


class ImageDataset:
    """What every conf/dataset/*.yaml instantiates: class list, protocol settings, and the two splits.

    The val split leaves out the images that cannot be read (each named in a warning, counted in the run's
    dataset.json and metrics), so an evaluation counts every readable image once and nothing else; more than
    ``max_bad_fraction`` of them stops the run.
    """

    name: str = "dataset"
    classes_from_data = False  # True: `classes: null` reads the class list from the data itself

    def __init__(
        self,
        root: str | None,
        classes: Sequence[str] | None,
        class_names: Sequence[str] | None,
        input_size: int,
        factor: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        name: str | None = None,
        max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,  # unreadable images a split skips before it stops
        allow_extra_folders: bool = False,  # true: the configured classes may be a subset of those found
        aspect: str = "crop",  # how a non-square image becomes a square one: crop | squash | pad (transforms.py)
        limit_per_class: Mapping[str, int | None] | None = None,  # {train: N, val: M}: the first N / M images
    ) -> None:
        if name is not None:
            self.name = name
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ConfigError(f"{name or self.name}: max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        if classes is None and not self.classes_from_data:
            raise ConfigError(
                f"{self.name}: dataset.classes is null, but the label order comes from the configured class list "
                "(the teacher's order): keep the listed classes; to leave other folders of the data aside, set "
                "dataset.allow_extra_folders=true"
            )
        self.max_bad_fraction = float(max_bad_fraction)
        self.allow_extra_folders = bool(allow_extra_folders)
        self.aspect = check_aspect(aspect)
        self.limit_per_class = _check_limits(self.name, limit_per_class)
        self._root_setting = root
        self.root_source = ""  # where the data root came from, for messages (fgdd.config.build_dataset knows the run config)
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

    @property
    def spec(self) -> DatasetSpec:
        """What the stages read about this dataset (built on each access: a class list read from the data, as
        Tiny-ImageNet's ``classes: null``, is known only once a split is listed)."""
        return DatasetSpec(name=self.name, classes=tuple(self.classes), class_names=tuple(self.class_names),
                           input_size=self.input_size, mean=self.mean, std=self.std, factor=self.factor)

    def train(self) -> ImageSplit:
        return self._split("train")

    def val(self) -> ImageSplit:
        return self._split("val")

    def listed_split(self, which: str) -> ImageSplit:
        """The split as the files list it (classes checked, ``limit_per_class`` applied), no image read yet."""
        try:
            split = self._build_split(which)
        except OSError as error:  # unreadable folder, unwritable data root for a generated set, I/O error
            raise DatasetNotFoundError(
                f"{self.name}: cannot read the {which} split under {self.data_root}: {error}. Check that the "
                f"folder exists and is readable (data_root=... / dataset.root=... or {DATA_DIR_ENV}); the "
                f"{self.root_origin()}"
            ) from error
        split.max_bad_fraction = self.max_bad_fraction
        limit = self.limit_per_class.get(which)
        if limit is not None:
            listed = {label: len(split.indices_of_class(label)) for label in range(len(split.classes))}
            split = split.subset([i for label in range(len(split.classes))
                                  for i in split.indices_of_class(label)[:limit]])
            split.before_limit = listed  # whether a larger limit would give a class more images (fgdd.check, ipc)
        return split

    def _split(self, which: str) -> ImageSplit:
        # Scanning a large folder is slow; every caller gets the same split (with_transform makes copies).
        if which not in self._splits:
            split = self.listed_split(which)
            if split.ignored_classes:
                log.warning("%s %s: ignoring %d class(es) found beside the configured ones "
                            "(allow_extra_folders=true): %s", self.name, which, len(split.ignored_classes),
                            split.ignored_classes)
            if which == "val":
                split = self._without_unreadable(split)
                split.replace_unreadable = False
            self._splits[which] = split
        return self._splits[which]

    def _without_unreadable(self, split: ImageSplit) -> ImageSplit:
        infos = split.inspect()
        bad = {split.relpath(i): info.error for i, info in enumerate(infos) if info.error}
        if not bad:
            return split
        listed = sorted(bad)
        if len(bad) > self.max_bad_fraction * len(split):
            raise CorruptImageError(
                f"{self.name}: {len(bad)} of {len(split)} val images under {split.base} cannot be read, more than "
                f"max_bad_fraction={self.max_bad_fraction}: {listed[:10]}{' ...' if len(bad) > 10 else ''}. "
                f"Replace or delete these files and rerun (or leave them out of the validation: "
                f"dataset.max_bad_fraction={tolerated_fraction(len(bad), len(split))})"
            )
        for path in listed:
            log.warning("%s: val image %s cannot be read (%s); it is left out of the validation split", self.name,
                        path, bad[path])
        kept = split.subset([i for i, info in enumerate(infos) if not info.error])
        kept.dropped = {path: bad[path] for path in listed}
        log.warning("%s: validating on %d of %d val images (%d unreadable)", self.name, len(kept), len(split),
                    len(bad))
        return kept

    def record(self) -> dict[str, Any]:
        """What a run folder keeps about the data it read (``dataset.json``), for the splits built so far."""
        return {
            "name": self.name,
            "data_root": str(self.data_root),
            "classes": list(self.classes),
            "aspect": self.aspect,
            "allow_extra_folders": self.allow_extra_folders,
            "limit_per_class": dict(self.limit_per_class),
            "splits": {
                which: {
                    "root": str(split.root),
                    "images": len(split),
                    "ignored_classes": list(split.ignored_classes),
                    "unreadable_left_out": dict(split.dropped),
                }
                for which, split in sorted(self._splits.items())
            },
        }

    def _build_split(self, which: str) -> ImageSplit:
        raise NotImplementedError

    def _not_found(self, path: Path, layout: str, download_hint: str = "") -> DatasetNotFoundError:
        return DatasetNotFoundError(
            f"{self.name}: no data at {path}: {what_is_at(path)}. The {self.root_origin()}. Expected layout: "
            f"{layout}. Put the files there, or point the data root elsewhere (`data_root=...` / `dataset.root=...` "
            f"or {DATA_DIR_ENV}){download_hint}."
        )

    def root_origin(self) -> str:
        return f"data root {self.data_root} comes from {self.root_source or 'the config'}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, classes={len(self.classes)}, input_size={self.input_size})"


def what_is_at(path: Path) -> str:
    """What stands where a folder should be: nothing (and the deepest part that exists), a file, or a folder
    that cannot be read (Path.exists would raise on that one)."""
    path = Path(os.path.abspath(path))  # a relative data root (the default, data) ends its parents at "."
    for part in (path, *path.parents):
        try:
            mode = os.stat(part).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:  # permission denied on a folder above, a file where a folder should be
            if error.errno == errno.ENOTDIR:
                continue
            return f"{part} cannot be read ({error.strerror})"
        if not stat.S_ISDIR(mode):
            return f"{part} is a file, not a folder"
        if not os.access(part, os.R_OK | os.X_OK):
            return f"{part} is a folder that cannot be read (permission denied)"
        if part == path:
            return "the folder is there, without the layout below"
        return f"{path} does not exist (the deepest folder that does: {part})"
    return f"{path} does not exist"


def _check_limits(name: str, limits: Mapping[str, int | None] | None) -> dict[str, int | None]:
    limits = dict(limits or {})
    unknown = sorted(set(limits) - set(SPLITS))
    if unknown:
        raise ConfigError(f"{name}: limit_per_class has keys {unknown}; use train and val")
    for which, value in limits.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{name}: limit_per_class.{which} must be a positive integer or null, got {value!r}")
    return limits


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
