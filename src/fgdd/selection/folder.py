"""An external distilled set as a selector (``selector=folder selector.path=...``): a folder of images per class that
some other method (or ``fgdd.export``) made, read into the run's ``distilled/`` so that the usual evaluators,
controls, report and figures score it like any selector's set.

What ``path`` may be:

- an ``fgdd.export`` folder (``export.json``, ``soft_labels.pt``, ``images/<class>/...``): the images are read from
  ``images/``; the soft labels are checked (checksum, classes, files) and round 0's labels are compared with the
  run's teacher on the inputs rebuilt from the stored augmentation, so a run cannot silently score the set with
  another teacher than the one that labelled it (the evaluators label online with the run's teacher, RDED's
  protocol: with the same teacher those are the stored labels);
- an fgdd distilled set (``distilled.json``: classes, ipc, factor);
- any folder of class folders (``<class>/*.png|jpg|...``); ipc = the images per class (equal in every class),
  factor = ``selector.factor``.

Each image becomes one distilled image of its own, in file-name order: its square under ``dataset.aspect`` resized
by PIL to the dataset's input size (fgdd's batched student stacks the set, so one size; RDED's evaluator crops and
resizes whatever size it reads; an image already at the input size, as every RDED and fgdd set is, keeps its
pixels). The run writes it losslessly (PNG), so the student sees the pixels the folder holds. The manifest records
each image's file as its ``source`` (``path: external``); the training images it was made from are unknown here.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fgdd.data.base import list_class_folders
from fgdd.data.images import is_image_file, open_rgb
from fgdd.data.spec import DatasetSpec
from fgdd.data.transforms import check_aspect, square_box
from fgdd.errors import ClassMismatchError, ConfigError, FgddError
from fgdd.export import DESCRIPTION, IMAGES, load_export
from fgdd.run_folder import DISTILLED_META
from fgdd.selection.base import ImageNeed, ImageSource, Selection
from fgdd.selection.candidates import crop_to_patch
from fgdd.selection.distilled_set import Patch

log = logging.getLogger(__name__)

EXTERNAL = "external"  # the manifest's `path` of an image read from a folder


class FolderSelector:
    image_format = "png"  # lossless: the run's copy decodes to the folder's pixels (JPEG again would change them)

    def __init__(self, path: str | None = None, factor: int = 1, aspect: str = "crop", label_tolerance: float = 1e-3,
                 name: str = "folder", ipc: int | None = None) -> None:
        if not path:
            raise ConfigError("selector=folder needs selector.path=<a folder of class folders or an fgdd.export>")
        self.name = name
        self.path = Path(path).expanduser().resolve()
        self.aspect = check_aspect(aspect)
        self.label_tolerance = label_tolerance
        if not self.path.is_dir():
            raise FgddError(f"selector.path={path}: no such folder (an image folder per class, a distilled set or an "
                            "fgdd.export folder)")
        self.export = (self.path / DESCRIPTION).is_file()
        self.root = self.path / IMAGES if self.export else self.path
        meta = self.root / DISTILLED_META
        self.meta: dict[str, Any] = json.loads(meta.read_text()) if meta.is_file() else {}
        self.classes: list[str] = list(self.meta.get("classes") or list_class_folders(self.root))
        self.files = {c: sorted(p for p in (self.root / c).iterdir() if p.is_file() and is_image_file(p))
                      for c in self.classes if (self.root / c).is_dir()}
        self.factor = int(self.meta.get("factor", factor))
        self.ipc = self._ipc()
        if ipc is not None:  # the run's (${ipc}): checked when the selector is built, so fgdd.check reports it too
            self.images_needed(ipc)

    def _ipc(self) -> int:
        if "ipc" in self.meta:
            return int(self.meta["ipc"])
        counts = Counter(len(files) for files in self.files.values())
        if len(counts) != 1:  # RDED's batch size and DD-Ranking's random control both assume one ipc
            per_class = {c: len(files) for c, files in self.files.items()}
            raise FgddError(f"{self.root}: the classes hold different numbers of images {per_class}; a set has one "
                            "ipc: give every class the same number (or add a distilled.json with ipc)")
        (ipc,) = counts
        if ipc == 0:
            raise FgddError(f"{self.root}: no images in the class folders ({', '.join(self.files) or 'none found'})")
        return ipc

    def images_needed(self, ipc: int) -> ImageNeed:
        # asked before the teacher is trained (fgdd.run, fgdd.check): a wrong ipc stops the run at once
        if ipc != self.ipc:
            raise ConfigError(f"selector.path={self.path} holds ipc {self.ipc}; run with ipc={self.ipc} (the run "
                              "folder, the report and the random_real control follow the run's ipc)")
        return ImageNeed(images=0, rule=f"none: the set is read from {self.path}")

    def foreground_summary(self) -> dict[str, dict] | None:
        return None

    def select(self, split: ImageSource, observer: nn.Module | None, *, ipc: int, seed: int, spec: DatasetSpec,
               device: torch.device, dataset: Any = None) -> Selection:
        self.images_needed(ipc)
        self._check_classes(list(split.classes))
        if self.export and observer is not None:
            self._check_labels(observer, device)
        selection: Selection = {}
        for label, class_id in enumerate(split.classes):
            patches = []
            for file in self.files[class_id]:
                image = open_rgb(file)
                box = square_box(image.size, self.aspect)
                patches.append(Patch(label=label, source=str(file), box=box, source_size=image.size, score=None,
                                     pixels=crop_to_patch(image, box, spec.input_size, crop_from="pil"),
                                     path=EXTERNAL, layout="full"))
            selection[label] = patches
        log.info("read %d images per class from %s (factor %d)", self.ipc, self.root, self.factor)
        return selection

    def _check_classes(self, expected: list[str]) -> None:
        remedy = ("Name the class folders as the dataset's classes (dataset.classes), in its order where the set's "
                  "distilled.json lists them")
        if self.meta.get("classes") is not None and self.classes != expected:
            raise ClassMismatchError(f"external set {self.root} vs dataset", expected, self.classes, remedy)
        if sorted(self.files) != sorted(expected) or sorted(list_class_folders(self.root)) != sorted(expected):
            raise ClassMismatchError(f"external set folders in {self.root}", sorted(expected),
                                     list_class_folders(self.root), remedy)

    def _check_labels(self, teacher: nn.Module, device: torch.device) -> None:
        """The export's round-0 labels against the run's teacher on the same rebuilt inputs."""
        export = load_export(self.path)
        names = [p.relative_to(self.root).as_posix() for c in self.classes for p in self.files[c]]
        if export.classes != self.classes or list(export.tensors["files"]) != names:
            raise FgddError(f"{self.path}: export.json's classes or soft_labels.pt's files do not match the images "
                            "in images/; export the run again")
        was_training = teacher.training
        with torch.no_grad():
            logits = teacher.eval()(export.inputs(0).to(device)).float().cpu()
        teacher.train(was_training)
        temperature = float(export.description["temperature"])
        gap = (torch.softmax(logits / temperature, dim=-1) - export.targets(0, temperature)).abs().max().item()
        if gap > self.label_tolerance:
            raise FgddError(
                f"{self.path}: the run's teacher does not give the stored soft labels (largest probability gap "
                f"{gap:.4f} > selector.label_tolerance={self.label_tolerance}); the evaluators would label with "
                f"another teacher than the one that labelled the set. Use its teacher "
                f"({export.description.get('teacher')}: teacher=checkpoint teacher.checkpoint=...) or raise the "
                "tolerance to score it with this one")
        log.info("stored soft labels match the run's teacher (largest probability gap %.2e)", gap)
