"""The generated shapes dataset: determinism, atomic reuse, masks that match the drawn objects, size mix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fgdd.data import SHAPE_KINDS, ShapesDataset
from fgdd.data.shapes import render_class
from fgdd.errors import ConfigError

KINDS = sorted(SHAPE_KINDS)


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _small(root: Path, seed: int = 0, **kwargs) -> ShapesDataset:
    return ShapesDataset(str(root), classes=KINDS, image_size=32, train_per_class=6, val_per_class=3, seed=seed, **kwargs)


def test_deterministic_bytes_and_reuse(tmp_path: Path) -> None:
    a, b = _small(tmp_path / "a"), _small(tmp_path / "b")
    assert len(a.train()) == 60 and len(b.val()) == 30
    assert a.dataset_dir.name == "shapes-v2-s32-n6x3-seed0"
    digest = _digest(a.dataset_dir)
    assert digest == _digest(b.dataset_dir) and len(digest) == 2 * 90 + 1  # images + masks + meta.json
    assert [p.name for p in (tmp_path / "a").iterdir()] == [a.dataset_dir.name]  # no temporary folder left
    mtime = (a.dataset_dir / "meta.json").stat().st_mtime_ns
    again = _small(tmp_path / "a")
    assert len(again.train()) == 60 and (a.dataset_dir / "meta.json").stat().st_mtime_ns == mtime  # reused
    other = _small(tmp_path / "a", seed=1)
    other.train()
    assert _digest(other.dataset_dir) != digest


def test_masks_match_drawn_objects(tmp_path: Path) -> None:
    ds = _small(tmp_path)
    train = ds.train()
    for i in range(len(train)):
        image = np.asarray(train.load_rgb(i)).reshape(-1, 3)
        mask = ds.mask("train", i)
        assert mask.shape == (32, 32) and mask.dtype == bool and mask.any()
        # The object is one flat colour; the textured background around it is not.
        inside = image[mask.reshape(-1)]
        assert (inside == inside[0]).all(), train.relpath(i)
        outside = image[~mask.reshape(-1)]
        assert len(outside) == 0 or (outside == inside[0]).all(axis=1).mean() < 0.05
    occupancy = np.array([ds.mask("train", i).mean() for i in range(len(train))])  # the true foreground fraction
    assert occupancy.shape == (60,) and ((occupancy > 0) & (occupancy < 1)).all()


def test_object_size_differs_by_class() -> None:
    # Classes of mostly-large objects (circle) against mostly-small ones (star), from the drawing itself.
    _, large = render_class("circle", 200, 64, seed=0)
    _, small = render_class("star", 200, 64, seed=0)
    assert np.median(large.mean(axis=(1, 2))) > 0.3 > 0.1 > np.median(small.mean(axis=(1, 2)))
    for kind in KINDS:  # every kind has both sizes, so occupancy varies within each class too
        occupancy = render_class(kind, 100, 64, seed=1)[1].mean(axis=(1, 2))
        assert occupancy.min() < 0.12 and occupancy.max() > 0.15, kind


def test_subset_and_unknown_kind(tmp_path: Path) -> None:
    subset = ShapesDataset(str(tmp_path), classes=["circle", "star"], image_size=32, train_per_class=2, val_per_class=1)
    assert subset.train().classes == ["circle", "star"] and len(subset.train()) == 4
    with pytest.raises(ConfigError, match="blob"):
        ShapesDataset(str(tmp_path), classes=["blob"])
