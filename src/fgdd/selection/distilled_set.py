"""The distilled set on disk: mosaics in class folders, a manifest of every patch, and a loader."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from fgdd.errors import ClassMismatchError, FgddError
from fgdd.selection.candidates import Box
from fgdd.selection.stitch import mosaic_position, stitch

MANIFEST = "manifest.jsonl"
META = "distilled.json"


@dataclass
class Patch:
    """One chosen patch: where it came from and why; ``pixels`` (c, p, p) in [0, 1] is not serialised."""

    label: int
    source: str
    box: Box
    source_size: tuple[int, int]  # width, height
    score: float | None
    pixels: torch.Tensor
    path: str = "crop"  # "crop": best of K candidates (RDED); "resize": the whole image
    extra: dict[str, Any] = field(default_factory=dict)


def _round(value: float | None) -> float | None:
    # scores differ in the last bits between BLAS builds; 6 decimals keep manifests comparable and readable
    return None if value is None else round(float(value), 6)


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
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        records = []
        for label, class_id in enumerate(classes):
            patches = list(selection[label])
            cells = factor * factor
            if len(patches) != ipc * cells:
                raise FgddError(f"class {class_id!r}: {len(patches)} patches for ipc={ipc}, factor={factor}")
            folder = staging / class_id
            folder.mkdir()
            sizes = {tuple(p.pixels.shape) for p in patches}
            if len(sizes) != 1:
                raise FgddError(f"class {class_id!r}: patches of different shapes {sorted(sizes)} cannot be stitched")
            mosaics = stitch(torch.stack([p.pixels for p in patches]), ipc, factor)  # (ipc, c, f*p, f*p)
            for image_index, mosaic in enumerate(mosaics):
                name = f"{image_index:04d}.{image_format}"
                (folder / name).write_bytes(_encode(mosaic, image_format, jpeg_quality))
            for rank, patch in enumerate(patches):
                image_index, row, col = mosaic_position(rank, ipc, factor)
                records.append(
                    {
                        "class": class_id,
                        "label": label,
                        "rank": rank,
                        "file": f"{class_id}/{image_index:04d}.{image_format}",
                        "cell": [row, col],
                        "source": patch.source,
                        "source_size": list(patch.source_size),
                        "box": list(patch.box),
                        "score": _round(patch.score),
                        "path": patch.path,
                        **{k: _round(v) if isinstance(v, float) else v for k, v in patch.extra.items()},
                    }
                )
        manifest = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        (staging / MANIFEST).write_text(manifest)
        meta = {"classes": list(classes), "ipc": ipc, "factor": factor, "image_format": image_format, **(info or {})}
        (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.rename(staging, out)  # atomic on one filesystem; fails rather than replaces if out appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # only our own staging folder, never the user's
        raise
    return out


class DistilledSet(Dataset):
    """A written distilled set as (PIL image, label); its class folders are checked against ``classes``."""

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.exists():
            raise FgddError(f"{self.root} is not a distilled set (no {META}); write one with fgdd.run")
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
        return [json.loads(line) for line in (self.root / MANIFEST).read_text().splitlines()]
