"""A generated demo dataset with exact foreground masks: one coloured shape per image on a textured background.

Classes are shape kinds. Each class has its own object-size mix (some mostly large objects that fill the image,
some mostly small ones), so foreground occupancy differs between and within classes, which is what the
foreground-aware selection reacts to. Generated once from a seed into
`<root>/shapes-v1-s{size}-n{train}x{val}-seed{seed}/` (train/<class>/NNNN.png, val/<class>/NNNN.png,
masks/{train,val}/<class>/NNNN.png with 0/255), written to a temporary folder and renamed, then reused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fgdd.data.base import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, ImageSplit, folder_split
from fgdd.errors import ConfigError, DatasetNotFoundError
from fgdd.utils.io import publish_folder
from fgdd.utils.seeding import SHAPES, derive_seed

GENERATOR_VERSION = "v2"  # bump when the drawing changes, so old folders are not reused

# kind -> probability that an image of the class shows a large object (else a small one).
SHAPE_KINDS: dict[str, float] = {
    "circle": 0.85,
    "crescent": 0.5,
    "cross": 0.15,
    "diamond": 0.5,
    "ellipse": 0.5,
    "hexagon": 0.85,
    "ring": 0.5,
    "square": 0.85,
    "star": 0.15,
    "triangle": 0.15,
}
LARGE_RADIUS = (0.36, 0.50)  # circumradius / image size: the object fills most of the image
SMALL_RADIUS = (0.18, 0.26)  # a small object somewhere in the image, still recognisable at 32 px
# Rotation range (degrees) per kind: square and diamond stay near their canonical pose so they stay distinct.
_ROTATION = {"square": 15.0, "diamond": 15.0, "cross": 20.0}


def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership in the unit shape (circumradius 1) at local coordinates u, v; all arrays (n, h, w)."""
    rho = np.hypot(u, v)
    if kind == "circle":
        return rho <= 1.0
    if kind == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    if kind == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0
    if kind == "crescent":
        return (rho <= 1.0) & ((u - 0.45) ** 2 + v**2 > 0.8**2)
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.72
    if kind == "diamond":
        return np.abs(u) / 1.0 + np.abs(v) / 0.6 <= 1.0
    if kind == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
    if kind in ("triangle", "hexagon"):
        sides = 3 if kind == "triangle" else 6
        apothem = np.cos(np.pi / sides)
        normals = np.pi / 2 + np.pi / sides + 2 * np.pi * np.arange(sides) / sides  # edge normal angles
        inside = np.ones(u.shape, dtype=bool)
        for a in normals:
            inside &= u * np.cos(a) + v * np.sin(a) <= apothem
        return inside
    if kind == "star":
        # Five points: the boundary radius falls linearly from 1 at a tip to 0.4 between tips.
        sector = 2 * np.pi / 5
        phi = np.mod(np.arctan2(v, u) - np.pi / 2, sector) - sector / 2
        return rho <= 1.0 - 0.6 * np.abs(phi) / (sector / 2)
    raise ConfigError(f"unknown shape kind {kind!r}; known: {sorted(SHAPE_KINDS)}")


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """Bilinear upsampling of a (cells+1)^2 random grid: values in [0, 1], shape (n, size, size)."""
    grid = rng.random((n, cells + 1, cells + 1))
    t = (np.arange(size) + 0.5) / size * cells
    i0 = np.minimum(t.astype(int), cells - 1)
    f = t - i0  # (size,)
    rows = grid[:, i0, :] * (1 - f)[None, :, None] + grid[:, i0 + 1, :] * f[None, :, None]  # (n, size, cells+1)
    return rows[:, :, i0] * (1 - f) + rows[:, :, i0 + 1] * f  # (n, size, size)


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Textured backgrounds mixing two random colours: smooth noise, stripes or a gradient; (n, size, size, 3)."""
    colour_a = rng.uniform(0, 255, (n, 1, 1, 3))
    colour_b = rng.uniform(0, 255, (n, 1, 1, 3))
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size  # (size, size) each
    angle = rng.uniform(0, np.pi, (n, 1, 1))
    along = x * np.cos(angle) + y * np.sin(angle)  # (n, size, size)
    freq = rng.uniform(3, 8, (n, 1, 1))
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * along)
    gradient = (along - along.min(axis=(1, 2), keepdims=True)) / np.ptp(along, axis=(1, 2), keepdims=True)
    noise = _smooth_noise(rng, n, size, cells=4)
    kind = rng.integers(0, 3, (n, 1, 1))
    mix = np.where(kind == 0, noise, np.where(kind == 1, stripes, gradient))[..., None]  # (n, size, size, 1)
    grain = rng.normal(0, 10, (n, size, size, 3))
    return colour_a * (1 - mix) + colour_b * mix + grain


def render_class(kind: str, n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images of one kind: (n, size, size, 3) uint8 images and (n, size, size) bool masks."""
    rng = np.random.default_rng(seed)
    large = rng.random(n) < SHAPE_KINDS[kind]
    radius = np.where(large, rng.uniform(*LARGE_RADIUS, n), rng.uniform(*SMALL_RADIUS, n)) * size  # pixels
    # Large objects sit near the centre (and may be cut by the border); small ones anywhere inside.
    centre_large = size / 2 + rng.uniform(-0.08, 0.08, (n, 2)) * size
    centre_small = rng.uniform(0, 1, (n, 2)) * (size - 2 * radius[:, None]) + radius[:, None]
    centre = np.where(large[:, None], centre_large, centre_small)  # (n, 2) as (x, y)
    spread = np.deg2rad(_ROTATION.get(kind, 180.0))
    angle = rng.uniform(-spread, spread, n)
    y, x = np.mgrid[0:size, 0:size] + 0.5  # pixel centres, (size, size) each
    dx = x[None] - centre[:, 0, None, None]  # (n, size, size)
    dy = y[None] - centre[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    r = radius[:, None, None]
    masks = _inside(kind, (dx * cos + dy * sin) / r, (-dx * sin + dy * cos) / r)  # (n, size, size)

    background = _backgrounds(rng, n, size)  # (n, size, size, 3)
    # Object colour: of 8 random colours, the one farthest from the mean background colour, so the object is
    # visible without its colour telling the class.
    candidates = rng.uniform(0, 255, (n, 8, 3))
    mean_bg = background.mean(axis=(1, 2))  # (n, 3)
    best = np.argmax(np.linalg.norm(candidates - mean_bg[:, None], axis=2), axis=1)
    colour = candidates[np.arange(n), best]  # (n, 3)
    images = np.where(masks[..., None], np.rint(colour)[:, None, None, :], background)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), masks


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def generate_shapes(dest: Path, size: int, train_per_class: int, val_per_class: int, seed: int) -> Path:
    """Write the whole dataset to `dest` atomically (temporary sibling folder, then rename); reuse if present."""
    if dest.is_dir():
        return dest
    with publish_folder(dest, exist_ok=True) as tmp:  # a concurrent writer that finished first wins
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for kind in SHAPE_KINDS:
                images, masks = render_class(kind, count, size, derive_seed(seed, SHAPES, split, kind))
                for folder in (tmp / split / kind, tmp / "masks" / split / kind):
                    folder.mkdir(parents=True)
                for i in range(count):
                    _save_png(images[i], tmp / split / kind / f"{i:04d}.png")
                    _save_png(masks[i].astype(np.uint8) * 255, tmp / "masks" / split / kind / f"{i:04d}.png")
        meta = {"generator": GENERATOR_VERSION, "size": size, "train_per_class": train_per_class,
                "val_per_class": val_per_class, "seed": seed, "kinds": SHAPE_KINDS}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return dest


class ShapesDataset(ImageDataset):
    def __init__(
        self,
        root: str | None,
        classes: Sequence[str],
        class_names: Sequence[str] | None = None,
        input_size: int = 32,
        factor: int = 1,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        download: bool = False,  # nothing to download: the data is generated on first use
        image_size: int = 64,
        train_per_class: int = 120,
        val_per_class: int = 40,
        seed: int = 0,
        name: str | None = None,
        **options: Any,  # ImageDataset's: max_bad_fraction, aspect, limit_per_class
    ) -> None:
        super().__init__(root, classes, class_names, input_size, factor, mean, std, download, name or "shapes",
                         **options)
        unknown = [c for c in self.classes if c not in SHAPE_KINDS]
        if unknown:
            raise ConfigError(f"{self.name}: unknown shape classes {unknown}; known: {sorted(SHAPE_KINDS)}")
        if min(train_per_class, val_per_class) < 1 or image_size < 8:
            raise ConfigError(f"{self.name}: needs image_size >= 8 and at least one image per class and split")
        self.image_size = image_size
        self.train_per_class = train_per_class
        self.val_per_class = val_per_class
        self.seed = seed

    @property
    def dataset_dir(self) -> Path:
        folder = f"shapes-{GENERATOR_VERSION}-s{self.image_size}-n{self.train_per_class}x{self.val_per_class}"
        return self.data_root / f"{folder}-seed{self.seed}"

    def _build_split(self, which: str) -> ImageSplit:
        directory = generate_shapes(
            self.dataset_dir, self.image_size, self.train_per_class, self.val_per_class, self.seed
        )
        # A subset of the kinds may be configured; folders of the other kinds are then left out.
        return folder_split(directory / which, self.classes, directory, allow_extra=True)

    def mask_path(self, which: str, i: int) -> Path:
        split = self._split(which)
        return self.dataset_dir / "masks" / split.relpath(i)

    def mask(self, which: str, i: int) -> np.ndarray:
        """True foreground of sample i of the split: bool (h, w)."""
        path = self.mask_path(which, i)
        if not path.is_file():
            raise DatasetNotFoundError(f"mask {path} is missing: delete {self.dataset_dir} to regenerate it")
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) > 127
