"""The teacher's val top-1 is measured once per (weights, val split content, transform, device kind) and reused."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from fgdd.data import ImageFolderDataset
from fgdd.data.cifar import PickledImageSplit
from fgdd.models.checkpoint import build_model, weights_sha256
from fgdd.pipeline import cached_teacher_accuracy

CONV1 = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 1, "width": 4, "norm": "batch"}


class CountingModel(nn.Module):
    """Wraps a classifier and counts the images it has been asked to classify."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.images_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += x.shape[0]
        return self.inner(x)


def _dataset(root: Path) -> ImageFolderDataset:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label, name in enumerate(["blue", "red"]):
            folder = root / "toy" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 120, size=(20, 20, 3))
                pixels[..., 2 - 2 * label] += 135
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return ImageFolderDataset(root=str(root), subdir="toy", classes=["blue", "red"], input_size=16, factor=1,
                              val_dir="val", name="toy")


def _teacher(seed: int = 0) -> CountingModel:
    torch.manual_seed(seed)
    return CountingModel(build_model(CONV1, num_classes=2, input_size=16)).eval()


def _measure(cache_dir: Path, teacher: nn.Module, dataset: ImageFolderDataset) -> float:
    cfg = OmegaConf.create({"cache_dir": str(cache_dir)})
    return cached_teacher_accuracy(cfg, teacher, dataset.val(), dataset, "cpu")


def test_second_run_reads_the_accuracy_instead_of_measuring(tmp_path: Path) -> None:
    dataset, teacher = _dataset(tmp_path), _teacher()
    first = _measure(tmp_path / "cache", teacher, dataset)
    assert teacher.images_seen == 6
    again = _measure(tmp_path / "cache", teacher, dataset)
    assert again == first and teacher.images_seen == 6  # no second pass over the val split
    (record,) = (tmp_path / "cache" / "teacher_accuracy").iterdir()
    assert json.loads(record.read_text())["val_top1"] == first


def test_other_weights_or_changed_val_images_are_measured_again(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    _measure(tmp_path / "cache", _teacher(0), dataset)
    other = _teacher(1)
    _measure(tmp_path / "cache", other, dataset)
    assert other.images_seen == 6

    image = tmp_path / "toy" / "val" / "red" / "000.png"
    Image.new("RGB", (20, 20), (0, 0, 255)).save(image)  # rewritten: another size and modification time
    os.utime(image, ns=(1, 1))
    _measure(tmp_path / "cache", other, dataset)
    assert other.images_seen == 12
    assert len(list((tmp_path / "cache" / "teacher_accuracy").iterdir())) == 3


def test_unreadable_cache_record_is_measured_again_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset, teacher = _dataset(tmp_path), _teacher()
    first = _measure(tmp_path / "cache", teacher, dataset)
    (record,) = (tmp_path / "cache" / "teacher_accuracy").iterdir()
    record.write_text('{"val_top1": 0.9')  # truncated
    with caplog.at_level(logging.WARNING, logger="fgdd.cache.keyed"):
        assert _measure(tmp_path / "cache", teacher, dataset) == first
    assert teacher.images_seen == 12 and "computing it again" in caplog.text
    assert json.loads(record.read_text())["val_top1"] == first  # measured again and stored
    aside = record.with_name(record.name + ".untrusted")
    assert aside.read_text() == '{"val_top1": 0.9'  # set aside, not deleted


def test_weights_hash_follows_values_not_the_object() -> None:
    a, b = _teacher(0), _teacher(0)
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.inner.classifier.bias.add_(1e-6)
    assert weights_sha256(a) != weights_sha256(b)


def test_in_memory_split_hash_covers_pixels(tmp_path: Path) -> None:
    pixels = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    split = PickledImageSplit(tmp_path, ["a", "b"], pixels.copy(), [0, 1], [0, 1])
    changed = pixels.copy()
    changed[1, 0, 0, 0] = 1
    assert split.content_sha256() != PickledImageSplit(tmp_path, ["a", "b"], changed, [0, 1], [0, 1]).content_sha256()
    assert split.content_sha256() == PickledImageSplit(tmp_path, ["a", "b"], pixels, [0, 1], [0, 1]).content_sha256()
