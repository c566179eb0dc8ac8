"""The distilled set on disk: mosaics in class folders, a manifest of every patch, and a loader."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from fgdd.errors import ClassMismatchError, FgddError
from fgdd.run_folder import DISTILLED_MANIFEST, DISTILLED_META
from fgdd.selection.candidates import Box
from fgdd.selection.stitch import mosaic_position, stitch
from fgdd.utils.io import publish_folder


@dataclass
class Patch:
    """One chosen patch: where it came from and why; ``pixels`` (c, p, p) in [0, 1] is not serialised."""

    label: int
    source: str
    box: Box  # top, left, height, width in source pixels; a whole image: its square (data.transforms.square_box)
    source_size: tuple[int, int]  # width, height
    score: float | None
    pixels: torch.Tensor
    path: str = "crop"  # "crop": best of K candidates (RDED); "resize": the whole image
    layout: str = "cell"  # "cell": one mosaic cell; "full": a distilled image of its own (no mosaic)
    occupancy: float | None = None  # foreground fraction of the source image, where it was measured
    threshold: float | None = None  # the class's patch-decision threshold, where one applies


def _round(value: float | None) -> float | None:
    # scores differ in the last bits between BLAS builds; 6 decimals keep manifests comparable and readable;
    # an infinite threshold (never / always resize) is written as null: JSON has no infinity
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _encode(image: torch.Tensor, image_format: str, jpeg_quality: int) -> bytes:
    """(c, h, w) in [0, 1] -> encoded image bytes (PIL's encoders are deterministic for the same pixels)."""
    pil = TF.to_pil_image(image.clamp(0, 1))
    buffer = io.BytesIO()
    if image_format == "jpg":
        pil.save(buffer, format="JPEG", quality=jpeg_quality)
    elif image_format == "png":
        pil.save(buffer, format="PNG")
    else:
        raise FgddError(f"unknown image_format {image_format!r}; use jpg or png")
    return buffer.getvalue()


def _arrange(
    class_id: str, patches: list[Patch], ipc: int, factor: int
) -> tuple[list[torch.Tensor], list[tuple[Patch, int, int, int]]]:
    """The class's distilled images and, per patch in rank order, (patch, image index, cell row, cell column).

    Cell patches are stitched as RDED does (rank r -> image r mod m, cell r div m, m = number of mosaics);
    whole images of layout "full" follow as images of their own.
    """
    cells = [p for p in patches if p.layout == "cell"]
    fulls = [p for p in patches if p.layout == "full"]
    per_image = factor * factor
    mosaics_needed = ipc - len(fulls)
    if mosaics_needed < 0 or len(cells) != mosaics_needed * per_image:
        raise FgddError(
            f"class {class_id!r}: {len(cells)} cell patches and {len(fulls)} whole images do not make ipc={ipc} "
            f"images of {factor}x{factor} cells"
        )
    images: list[torch.Tensor] = []
    if cells:
        sizes = {tuple(p.pixels.shape) for p in cells}
        if len(sizes) != 1:
            raise FgddError(f"class {class_id!r}: patches of different shapes {sorted(sizes)} cannot be stitched")
        images += list(stitch(torch.stack([p.pixels for p in cells]), mosaics_needed, factor))  # (c, f*p, f*p) each
    images += [p.pixels for p in fulls]
    position = {id(p): mosaic_position(rank, mosaics_needed, factor) for rank, p in enumerate(cells)}
    position |= {id(p): (mosaics_needed + k, 0, 0) for k, p in enumerate(fulls)}
    return images, [(p, *position[id(p)]) for p in patches]


def _write_durably(path: Path, data: bytes) -> None:
    # inside the staging folder: the bytes reach the disk before the folder is renamed into place, so a power
    # loss cannot leave a complete-looking set with empty files
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_distilled_set(
    out_dir: str | os.PathLike[str],
    selection: Mapping[int, Sequence[Patch]],
    classes: Sequence[str],
    *,
    ipc: int,
    factor: int,
    image_format: str = "jpg",
    jpeg_quality: int = 75,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Stitch each class's ranked patches and write the set; the folder appears complete or not at all.

    Refuses to touch an existing folder: a finished distilled set is never overwritten.
    """
    out = Path(out_dir)
    if out.exists():
        raise FgddError(f"distilled set {out} already exists; fgdd never overwrites one (use a new run folder)")
    with publish_folder(out) as staging:
        records = []
        for label, class_id in enumerate(classes):
            folder = staging / class_id
            folder.mkdir()
            images, placed = _arrange(class_id, list(selection[label]), ipc, factor)
            for image_index, image in enumerate(images):
                _write_durably(folder / f"{image_index:04d}.{image_format}", _encode(image, image_format, jpeg_quality))
            for rank, (patch, image_index, row, col) in enumerate(placed):
                records.append(
                    {
                        "class": class_id,
                        "label": label,
                        "rank": rank,
                        "file": f"{class_id}/{image_index:04d}.{image_format}",
                        "cell": [row, col],
                        "layout": patch.layout,
                        "source": patch.source,
                        "source_size": list(patch.source_size),
                        "box": list(patch.box),
                        "score": _round(patch.score),
                        "path": patch.path,
                        "occupancy": _round(patch.occupancy),
                        "threshold": _round(patch.threshold),
                    }
                )
        manifest = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        _write_durably(staging / DISTILLED_MANIFEST, manifest.encode())
        meta = {"classes": list(classes), "ipc": ipc, "factor": factor, "image_format": image_format, **(info or {})}
        _write_durably(staging / DISTILLED_META, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return out


class DistilledSet(Dataset):
    """A written distilled set as (PIL image, label); its class folders are checked against ``classes``."""

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / DISTILLED_META
        if not meta_path.exists():
            raise FgddError(f"{self.root} is not a distilled set (no {DISTILLED_META}); write one with fgdd.run")
        self.meta = json.loads(meta_path.read_text())
        self.classes: list[str] = list(self.meta["classes"])
        self.factor: int = int(self.meta["factor"])
        self.ipc: int = int(self.meta["ipc"])
        if classes is not None and list(classes) != self.classes:
            raise ClassMismatchError("distilled set vs dataset", list(classes), self.classes)
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if folders != sorted(self.classes):
            raise ClassMismatchError(f"distilled set folders in {self.root}", sorted(self.classes), folders)
        suffix = f".{self.meta['image_format']}"
        self.samples = [
            (path, label)
            for label, class_id in enumerate(self.classes)
            for path in sorted((self.root / class_id).glob(f"*{suffix}"))
        ]
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            return image.convert("RGB"), label

    def manifest(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.root / DISTILLED_MANIFEST).read_text().splitlines()]
