"""Tiny-ImageNet-200 in its official layout.

train/<wnid>/images/*.JPEG (+ train/<wnid>/<wnid>_boxes.txt), val/images/*.JPEG + val/val_annotations.txt
(file -> wnid, box), wnids.txt, words.txt. Labels follow the sorted wnids, as torchvision's ImageFolder over
train/ gives them (RDED's teachers), not the unsorted order of wnids.txt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgdd.data.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDataset,
    ImageSplit,
    check_class_folders,
    class_mismatch,
    folder_split,
    is_image_file,
)
from fgdd.data.download import fetch_folder
from fgdd.errors import ConfigError, DatasetNotFoundError

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
NAME = "tinyimagenet"
# sha256 of the official 200 wnids (sorted, one per line, as conf/dataset/tinyimagenet.yaml lists them): a class
# list read from a copy's wnids.txt (classes=null) runs under the name tinyimagenet only if it is that list
OFFICIAL_WNIDS_SHA256 = "342d6acf18911d62da4c981221f833718a3ef8299e55512239e09c64e49a344c"


def wnids_sha256(wnids: Sequence[str]) -> str:
    return hashlib.sha256(("\n".join(sorted(wnids)) + "\n").encode()).hexdigest()

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels (inclusive corners, as the files give them)


def read_boxes(path: Path) -> dict[str, Box]:
    """`<wnid>_boxes.txt` lines `file x0 y0 x1 y1` or val_annotations.txt lines `file wnid x0 y0 x1 y1`."""
    boxes: dict[str, Box] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (5, 6):
            raise ConfigError(f"{path}:{number}: expected `file [wnid] x0 y0 x1 y1`, got {line!r}")
        x0, y0, x1, y1 = (int(v) for v in fields[-4:])
        boxes[fields[0]] = (x0, y0, x1, y1)
    return boxes


def read_val_annotations(path: Path) -> dict[str, str]:
    """val_annotations.txt: file name -> wnid."""
    labels: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ConfigError(f"{path}:{number}: expected `file wnid x0 y0 x1 y1`, got {line!r}")
        labels[fields[0]] = fields[1]
    return labels


def read_words(path: Path) -> dict[str, str]:
    """words.txt: wnid -> its first lemma ("goldfish, Carassius auratus" -> "goldfish")."""
    names: dict[str, str] = {}
    for line in path.read_text().splitlines():
        wnid, _, words = line.partition("\t")
        if wnid:
            names[wnid.strip()] = words.split(",")[0].strip()
    return names


class TinyImageNetDataset(ImageDataset):
    classes_from_data = True  # classes=null: the sorted wnids of wnids.txt

    def __init__(
        self,
        root: str | None,
        classes: Sequence[str] | None,  # null: the sorted wnids of wnids.txt
        class_names: Sequence[str] | None = None,  # null: first lemma from words.txt (else the wnid)
        input_size: int = 64,
        factor: int = 1,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,
        subdir: str = "tiny-imagenet-200",
        name: str | None = None,
        **options: Any,  # ImageDataset's: max_bad_fraction, allow_extra_folders, aspect, limit_per_class
    ) -> None:
        self.subdir = subdir
        self._classes_given = classes is not None
        self._names_from_words = class_names is None
        self._checked = False
        self._ignored_wnids: list[str] = []  # in wnids.txt or train/ but not configured (allow_extra_folders)
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, name or NAME,
                         **options)
        if classes is None:
            self._prepare()  # callers read `classes` before any split (model size), so fill it now

    @property
    def dataset_dir(self) -> Path:
        return self.data_root / self.subdir

    @property
    def class_names(self) -> list[str]:
        if self._names_from_words and not self._checked:
            self._prepare()  # names come from words.txt, so reading them means reading the data folder
        return self._class_names

    @class_names.setter
    def class_names(self, names: list[str]) -> None:
        self._class_names = names

    layout = "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt"

    def _prepare(self) -> None:
        if self._checked:
            return
        directory = self.dataset_dir
        if not (directory / "train").is_dir():
            if not self.download:
                raise self._not_found(directory, self.layout, "; or set download=true")
            fetch_folder(TINY_IMAGENET_URL, None, self.subdir, directory, what=self.name, layout=self.layout)
        wnids_file = directory / "wnids.txt"
        ignored: list[str] = []
        if wnids_file.is_file():
            wnids = sorted(wnids_file.read_text().split())
            if self._classes_given:
                wanted = set(self.classes)
                used = [w for w in wnids if w in wanted] if self.allow_extra_folders else wnids
                if sorted(self.classes) != used:
                    raise class_mismatch(f"{wnids_file} vs the dataset config's `classes`", sorted(self.classes),
                                         wnids, self.allow_extra_folders)
                ignored = [w for w in wnids if w not in wanted]
            else:
                self._refuse_renamed_class_list(wnids, wnids_file)
                self.classes = wnids
        elif not self._classes_given:
            raise DatasetNotFoundError(f"{wnids_file} is missing and the config lists no `classes`: add either")
        if self._names_from_words:
            words_file = directory / "words.txt"
            words = read_words(words_file) if words_file.is_file() else {}
            self.class_names = [words.get(wnid, wnid) for wnid in self.classes]
        ignored += check_class_folders(directory / "train", self.classes, self.allow_extra_folders)
        self._ignored_wnids = sorted(set(ignored))
        self._checked = True

    def _refuse_renamed_class_list(self, wnids: list[str], wnids_file: Path) -> None:
        """classes=null on a copy whose wnids.txt is not the official list would run another dataset under the
        name tinyimagenet (its teacher, caches and report rows mixed with the real one's): refused unless renamed."""
        if self.name == NAME and wnids_sha256(wnids) != OFFICIAL_WNIDS_SHA256:
            raise ConfigError(
                f"with dataset.classes null the class list comes from {wnids_file}: {len(wnids)} wnids, not the 200 of "
                f"the official Tiny-ImageNet, so a run on them would be another dataset under the name {NAME!r}. "
                f"Either keep the configured 200 classes (drop the classes=null override) and set "
                f"dataset.allow_extra_folders=true to leave the other wnids aside (named in a warning and recorded "
                f"in the run folder), or give this class list its own name: dataset.name={NAME}-{len(wnids)}"
            )

    def _build_split(self, which: str) -> ImageSplit:
        self._prepare()
        directory = self.dataset_dir
        if which == "train":
            split = folder_split(directory / "train", self.classes, directory, inner="images",
                                 allow_extra=self.allow_extra_folders)
            split.ignored_classes = self._ignored_wnids
            return split
        annotations = directory / "val" / "val_annotations.txt"
        if not annotations.is_file():
            # A val/ folder already sorted into val/<wnid>/ (a common preprocessing step) reads like train/.
            return folder_split(directory / "val", self.classes, directory, allow_extra=self.allow_extra_folders)
        labels = read_val_annotations(annotations)
        images = directory / "val" / "images"
        label_of = {wnid: i for i, wnid in enumerate(self.classes)}
        unknown = sorted({wnid for wnid in labels.values() if wnid not in label_of})
        if unknown and not self.allow_extra_folders:
            raise class_mismatch(f"wnids in {annotations} vs the dataset config's `classes`", self.classes,
                                 sorted(set(labels.values())), allow_extra=False)
        files = sorted(p for p in images.iterdir() if is_image_file(p)) if images.is_dir() else []
        missing = [p.name for p in files if p.name not in labels]
        if missing:
            raise DatasetNotFoundError(f"{len(missing)} images in {images} have no line in {annotations}: {missing[:5]}")
        samples = sorted(((p, label_of[labels[p.name]]) for p in files if labels[p.name] in label_of),
                         key=lambda s: (s[1], s[0].name))
        split = ImageSplit(images, self.classes, samples, base=directory)
        split.ignored_classes = unknown  # their images are left out
        return split

    def boxes(self, which: str) -> dict[str, Box]:
        """relpath (as ImageSplit.relpath gives it) -> ground-truth box of the object."""
        self._prepare()
        directory = self.dataset_dir
        out: dict[str, Box] = {}
        if which == "train":
            for wnid in self.classes:
                box_file = directory / "train" / wnid / f"{wnid}_boxes.txt"
                if box_file.is_file():
                    out.update({f"train/{wnid}/images/{f}": b for f, b in read_boxes(box_file).items()})
        else:
            annotations = directory / "val" / "val_annotations.txt"
            if annotations.is_file():
                out.update({f"val/images/{f}": b for f, b in read_boxes(annotations).items()})
        return out
