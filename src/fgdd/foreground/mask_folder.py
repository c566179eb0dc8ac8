"""Masks computed elsewhere (any tool, any model), read from a folder that mirrors the dataset.

For the image at ``<dataset root>/<relpath>`` the mask is ``<root>/<relpath with its suffix replaced by .png>``,
one channel, foreground where the value is > ``threshold``. A mask of another size but the same aspect ratio is
resized to the image with nearest neighbour (so it stays binary).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from fgdd.errors import ConfigError, FgddError
from fgdd.foreground.base import SegmentationContext

ASPECT_TOLERANCE = 0.02  # relative; masks saved at a smaller size round their sides to whole pixels


def fit_mask(mask: np.ndarray, width: int, height: int, what: str) -> np.ndarray:
    """bool (h, w) mask -> bool (height, width), nearest neighbour; the aspect ratios must agree."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    if abs((w / h) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise FgddError(
            f"mask {what} is {w}x{h} but its image is {width}x{height}: the aspect ratios differ, so it cannot be "
            "resized onto the image; write masks at the image's size (or at least its aspect ratio)"
        )
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized) > 127


def read_mask(path: Path, threshold: int) -> np.ndarray:
    """One-channel mask file -> bool (h, w), foreground where value > threshold (8-bit scale)."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                values = np.asarray(image, dtype=np.int64) / 257.0  # 16-bit -> 8-bit scale
            elif mode in ("1", "L", "P", "LA", "La"):
                values = np.asarray(image.convert("L"))
            elif mode in ("RGB", "RGBA"):
                rgb = np.asarray(image.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise FgddError(f"mask {path} has colour ({mode}): masks must be one channel (grey or 0/255)")
                values = rgb[..., 0]
            else:
                raise FgddError(f"mask {path} has image mode {mode}: masks must be one channel (L, 1, P or 16-bit)")
    except (OSError, SyntaxError, ValueError) as error:
        raise FgddError(f"cannot read mask {path}: {error}") from error
    return values > threshold


def folder_fingerprint(root: Path, suffix: str) -> dict[str, int]:
    """Cheap summary that changes when masks are added, removed or rewritten: count, total bytes, newest mtime."""
    count = size = newest = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.name.endswith(suffix):
                    stat = entry.stat()
                    count += 1
                    size += stat.st_size
                    newest = max(newest, stat.st_mtime_ns)
    return {"files": count, "bytes": size, "newest_mtime_ns": newest}


class MaskFolderSegmenter:
    def __init__(
        self,
        root: str,
        suffix: str = ".png",  # replaces the image's own suffix (photo.JPEG -> photo.png)
        threshold: int = 127,  # foreground where the 8-bit value is above it (0/255 and soft masks alike)
        name: str = "mask_folder",
    ) -> None:
        if not root:
            raise ConfigError("segmenter=mask_folder needs `segmenter.root=/path/to/masks`")
        if not suffix.startswith("."):
            raise ConfigError(f"mask_folder suffix must start with a dot (e.g. .png), got {suffix!r}")
        if not 0 <= threshold < 255:
            raise ConfigError(f"mask_folder threshold must be in [0, 255), got {threshold}")
        self.name = name
        self.root = Path(root).expanduser()
        self.suffix = suffix
        self.threshold = int(threshold)
        self._fingerprint: dict[str, int] | None = None

    def setup(self, context: SegmentationContext) -> None:
        if not self.root.is_dir():
            raise FgddError(
                f"mask folder {self.root} does not exist: point segmenter.root at a folder that mirrors the dataset "
                f"(<root>/<image relpath with {self.suffix}>)"
            )
        self._fingerprint = folder_fingerprint(self.root, self.suffix)

    def cache_key(self) -> dict[str, Any]:
        if self._fingerprint is None:
            raise FgddError("MaskFolderSegmenter.cache_key() needs setup(context) first (it fingerprints the folder)")
        return {
            "name": self.name,
            "method": "mask_folder-v1",
            "root": str(self.root.resolve()),
            "suffix": self.suffix,
            "threshold": self.threshold,
            "folder": self._fingerprint,
        }

    def mask_path(self, source: str) -> Path:
        return self.root / PurePosixPath(source).with_suffix(self.suffix)

    def masks(
        self,
        images: Sequence[Image.Image],
        *,
        labels: Sequence[int],
        prompts: Sequence[str],
        sources: Sequence[str],
    ) -> list[np.ndarray]:
        if len(sources) != len(images):
            raise FgddError(f"mask_folder: {len(images)} images but {len(sources)} source paths")
        out = []
        for image, source in zip(images, sources):
            path = self.mask_path(source)
            if not path.is_file():
                raise FgddError(
                    f"mask_folder: no mask for image {source}: expected {path}. Write one mask per image, mirroring "
                    f"the dataset's layout under {self.root}, with the suffix {self.suffix}"
                )
            out.append(fit_mask(read_mask(path, self.threshold), image.width, image.height, str(path)))
        return out
