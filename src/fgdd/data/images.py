"""Single image files: reading as 8-bit RGB, and a fast look at a file (header, and whether its pixels decode)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fgdd.errors import CorruptImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# Integer modes whose values span 16 bits (PNG/TIFF 16-bit grey). Pillow opens them as I;16* or I.
_WIDE_INT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# What Pillow raises for a file it cannot read: truncated or corrupt data, not an image, an unsupported mode.
_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

# JPEG files are decoded at 1/8 of their size (libjpeg's DCT scaling) to check them: the decoder still reads every
# byte of the compressed stream, so a truncated or corrupt file fails as it does at full size (the same errors
# on files cut at 60 points, baseline and progressive), at a fraction of the cost.
CHECK_SCALE = 8


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


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
    except _READ_ERRORS as error:
        raise CorruptImageError(
            f"cannot read image {path}: {error}. Replace or delete the file (then rerun)."
        ) from error


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says (size as (width, height), PIL mode, format) and, if its pixels do not decode
    into 8-bit RGB, why (``error``; None: readable)."""

    size: tuple[int, int] | None
    mode: str | None
    format: str | None
    error: str | None = None


def inspect_image(path: Path) -> ImageInfo:
    size = mode = image_format = None
    try:
        with Image.open(path) as image:
            size, mode, image_format = image.size, image.mode, image.format
            if image_format == "JPEG":
                image.draft(image.mode, (max(1, size[0] // CHECK_SCALE), max(1, size[1] // CHECK_SCALE)))
            image.load()
            to_rgb(image)  # the conversion every reader applies (fails for 32-bit float images)
    except _READ_ERRORS as error:
        return ImageInfo(size, mode, image_format, f"{type(error).__name__}: {error}")
    return ImageInfo(size, mode, image_format)


def inspect_images(paths: Sequence[Path], workers: int | None = None) -> list[ImageInfo]:
    """``inspect_image`` of every path, in order; Pillow decodes outside the GIL, so threads share the cores."""
    workers = workers or min(8, os.cpu_count() or 1)
    if workers == 1 or len(paths) < 64:
        return [inspect_image(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(inspect_image, paths, chunksize=64))
