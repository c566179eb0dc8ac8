"""RDED's selection: per class, the best of K random crops of each of mipc images, then the top ipc*factor^2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from fgdd.errors import ConfigError
from fgdd.selection.base import ImageSource, Selection, TolerantLoader, require_enough
from fgdd.selection.candidates import crop_boxes, crop_to_patch, draw_images
from fgdd.selection.distilled_set import Patch
from fgdd.selection.scoring import score_patches


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
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        batch_images: int = 64,
        max_bad_fraction: float = 0.01,
    ) -> None:
        if factor < 1 or num_candidates < 1 or mipc < 1:
            raise ConfigError(f"selector needs factor, num_candidates, mipc >= 1; got {factor}, {num_candidates}, {mipc}")
        self.name = name
        self.factor = factor
        self.num_candidates = num_candidates
        self.mipc = mipc
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.crop_ratio = (float(crop_ratio[0]), float(crop_ratio[1]))
        self.batch_images = batch_images
        self.max_bad_fraction = max_bad_fraction

    def best_crops(
        self,
        images: list[tuple[str, object]],
        label: int,
        observer: nn.Module,
        *,
        seed: int,
        patch_size: int,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> list[Patch]:
        """For each (relpath, PIL image): K candidate crops scored by the observer, the lowest-loss one kept."""
        k = self.num_candidates
        boxes = [crop_boxes(img.size, k, seed, source, self.crop_scale, self.crop_ratio) for source, img in images]
        candidates = torch.stack(
            [crop_to_patch(img, box, patch_size) for (_, img), image_boxes in zip(images, boxes) for box in image_boxes]
        )  # (n * k, c, p, p), image-major
        labels = torch.full((len(candidates),), label, dtype=torch.long)
        scores = score_patches(
            observer, candidates, labels, input_size=input_size, mean=mean, std=std, device=device
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

    def select(
        self,
        split: ImageSource,
        observer: nn.Module | None,
        *,
        ipc: int,
        seed: int,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> Selection:
        if observer is None:
            raise ConfigError("the rded selector scores crops with a teacher; none was given")
        if input_size % self.factor:
            raise ConfigError(f"input_size {input_size} is not divisible by factor {self.factor}")
        patch_size = input_size // self.factor
        keep = ipc * self.factor**2
        load = TolerantLoader(split, self.max_bad_fraction)
        selection: Selection = {}
        for label, class_id in enumerate(tqdm(split.classes, desc="select (rded)", unit="class")):
            drawn = draw_images(split.indices_of_class(label), self.mipc, seed, label)
            require_enough(class_id, len(drawn), keep, f"ipc={ipc} x factor^2={self.factor**2} (one patch per image)")
            patches: list[Patch] = []
            for start in range(0, len(drawn), self.batch_images):
                images = [(split.relpath(i), img) for i, img in load(drawn[start : start + self.batch_images])]
                if images:
                    patches += self.best_crops(
                        images, label, observer, seed=seed, patch_size=patch_size,
                        input_size=input_size, mean=mean, std=std, device=device,
                    )
            require_enough(class_id, len(patches), keep, f"ipc={ipc} x factor^2={self.factor**2} (readable images)")
            selection[label] = rank_patches(patches, keep)
        return selection
