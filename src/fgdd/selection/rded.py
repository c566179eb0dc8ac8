"""RDED's selection: per class, the best of K random crops of each of mipc images, then the top ipc*factor^2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from fgdd.data.spec import DatasetSpec
from fgdd.errors import ConfigError
from fgdd.selection.base import ImageNeed, ImageSource, Selection, TolerantLoader, require_enough
from fgdd.selection.candidates import CropFrom, crop_boxes, crop_patches, draw_images
from fgdd.selection.distilled_set import Patch
from fgdd.selection.scoring import score_patches
from fgdd.utils.precision import Resolved, check_precision, resolve_precision


def rank_patches(patches: list[Patch], keep: int) -> list[Patch]:
    """Lowest score first; ties keep drawn order (stable sort), so ranking is deterministic."""
    return sorted(patches, key=lambda p: p.score)[:keep]


class RDEDSelector:
    def __init__(
        self,
        factor: int,
        name: str = "rded",
        num_candidates: int = 5,
        mipc: int = 300,
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (1.0, 1.0),  # square boxes, as RDED; (3/4, 4/3) is torchvision's default
        crop_from: CropFrom = "tensor",  # RDED: the float image is cropped and resized; "pil": the 8-bit image
        batch_images: int = 64,
        max_bad_fraction: float = 0.01,
        channels_last: bool = True,  # candidate batches in NHWC memory order: faster convolutions, scores equal up to rounding
        precision: str = "fp32",  # auto | fp32 | bf16 of the observer's forward passes (fgdd.utils.precision)
    ) -> None:
        if factor < 1 or num_candidates < 1 or mipc < 1:
            raise ConfigError(f"selector needs factor, num_candidates, mipc >= 1; got {factor}, {num_candidates}, {mipc}")
        if crop_from not in ("tensor", "pil"):
            raise ConfigError(f"selector.crop_from must be 'tensor' or 'pil', got {crop_from!r}")
        if not 0 < crop_ratio[0] <= crop_ratio[1]:
            raise ConfigError(f"selector.crop_ratio must be [low, high] with 0 < low <= high, got {list(crop_ratio)}")
        check_precision(precision, "select")
        self.name = name
        self.factor = factor
        self.num_candidates = num_candidates
        self.mipc = mipc
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.crop_from = crop_from
        self.batch_images = batch_images
        self.max_bad_fraction = max_bad_fraction
        self.channels_last = channels_last
        self.precision = precision

    def cells(self, ipc: int) -> int:
        """Mosaic cells per class: ipc images of factor x factor patches."""
        return ipc * self.factor**2

    def images_needed(self, ipc: int) -> ImageNeed:
        # one patch per drawn image, from at most mipc images a class
        return ImageNeed(images=self.cells(ipc), rule=f"ipc x factor^2 = {ipc} x {self.factor}^2, one patch per image",
                         pool=self.mipc)

    def best_crops(
        self,
        images: list[tuple[str, Image.Image]],
        label: int,
        observer: nn.Module,
        *,
        seed: int,
        patch_size: int,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        precision: Resolved = "fp32",
    ) -> list[Patch]:
        """For each (relpath, PIL image): K candidate crops scored by the observer, the lowest-loss one kept."""
        k = self.num_candidates
        boxes = [crop_boxes(img.size, k, seed, source, self.crop_scale, self.crop_ratio) for source, img in images]
        candidates = torch.cat(
            [crop_patches(img, image_boxes, patch_size, self.crop_from) for (_, img), image_boxes in zip(images, boxes)]
        )  # (n * k, c, p, p), image-major
        labels = torch.full((len(candidates),), label, dtype=torch.long)
        scores = score_patches(
            observer, candidates, labels, input_size=input_size, mean=mean, std=std, device=device,
            channels_last=self.channels_last, precision=precision,
        ).view(len(images), k)  # n images x k candidates
        best = scores.argmin(dim=1)  # (n,) first minimum on ties
        return [
            Patch(
                label=label,
                source=source,
                box=boxes[i][int(best[i])],
                source_size=img.size,
                score=float(scores[i, best[i]]),
                pixels=candidates[i * k + int(best[i])],
                path="crop",
            )
            for i, (source, img) in enumerate(images)
        ]

    def prepare(self, split: ImageSource, drawn: dict[int, list[int]], observer: nn.Module, device: torch.device,
                dataset: Any) -> None:
        """Hook run once after the images are drawn and before any is scored (the foreground stage uses it)."""

    def foreground_summary(self) -> dict[str, dict] | None:
        """Per class, the occupancies measured and the threshold applied (None: this selector uses none)."""
        return None

    def class_patches(
        self, images: list[tuple[str, Image.Image]], label: int, observer: nn.Module, **scoring: Any
    ) -> list[Patch]:
        """One scored patch per source image: RDED's best crop."""
        return self.best_crops(images, label, observer, **scoring)

    def keep(self, patches: list[Patch], ipc: int) -> list[Patch]:
        """The class's patches for the distilled set, in rank order: RDED's top ipc * factor^2."""
        return rank_patches(patches, self.cells(ipc))

    def select(
        self,
        split: ImageSource,
        observer: nn.Module | None,
        *,
        ipc: int,
        seed: int,
        spec: DatasetSpec,
        device: torch.device,
        dataset: Any = None,
    ) -> Selection:
        if observer is None:
            raise ConfigError(f"the {self.name} selector scores patches with a teacher; none was given")
        input_size = spec.input_size
        if input_size % self.factor:
            raise ConfigError(f"input_size {input_size} is not divisible by factor {self.factor}")
        scoring = dict(seed=seed, patch_size=input_size // self.factor, input_size=input_size, mean=spec.mean,
                       std=spec.std, device=device,
                       precision=resolve_precision(self.precision, device, stage="select"))
        cells = self.cells(ipc)
        need = f"ipc={ipc} x factor^2={self.factor**2} (one patch per image)"
        drawn = {label: draw_images(split.indices_of_class(label), self.mipc, seed, label)
                 for label in range(len(split.classes))}
        for label, class_id in enumerate(split.classes):
            require_enough(class_id, len(drawn[label]), cells, need)
        self.prepare(split, drawn, observer, device, dataset)
        load = TolerantLoader(split, self.max_bad_fraction, expected=sum(len(d) for d in drawn.values()))
        selection: Selection = {}
        for label, class_id in enumerate(tqdm(split.classes, desc=f"select ({self.name})", unit="class")):
            patches: list[Patch] = []
            for start in range(0, len(drawn[label]), self.batch_images):
                images = [(split.relpath(i), img) for i, img in load(drawn[label][start : start + self.batch_images])]
                if images:
                    patches += self.class_patches(images, label, observer, **scoring)
            require_enough(class_id, len(patches), cells, need.replace("one patch per image", "readable images"))
            selection[label] = self.keep(patches, ipc)
        return selection
