"""The val split decoded once: the same floats as eval_transform, a cache keyed by content, and a whole run (teacher
training, its accuracy, every student validation) that decodes the val split at most once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgdd.data import ImageFolderDataset, ImageSplit
from fgdd.data.transforms import eval_transform
from fgdd.errors import ConfigError
from fgdd.evaluation.eval_images import EvalBatches, EvalImages, decode_eval_images
from fgdd.utils.normalise import normalise

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _dataset(root: Path, size: int = 20) -> ImageFolderDataset:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("blue", "red"):
            folder = root / "toy" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (size + i, size + 2 * i, 3)).astype(np.uint8)).save(
                    folder / f"{i:03d}.png")
    return ImageFolderDataset(root=str(root), subdir="toy", classes=["blue", "red"], input_size=16, factor=1,
                              val_dir="val", name="toy")


class CountingLoads:
    """Counts images read from disk per split root (ImageSplit.load_rgb is where every decode happens)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: dict[str, int] = {}
        original = ImageSplit.load_rgb

        def load_rgb(split: ImageSplit, i: int) -> Image.Image:
            key = Path(split.root).name
            self.counts[key] = self.counts.get(key, 0) + 1
            return original(split, i)

        monkeypatch.setattr(ImageSplit, "load_rgb", load_rgb)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_normalised_decoded_images_equal_the_eval_transform_bit_for_bit(tmp_path: Path, size: int) -> None:
    dataset = _dataset(tmp_path, size=size + 5)
    split = dataset.val()
    decoded = decode_eval_images(split, size)
    assert decoded.images.dtype == torch.uint8 and decoded.images.shape == (len(split), 3, size, size)
    expected = torch.stack([eval_transform(size, MEAN, STD)(split.load_rgb(i)) for i in range(len(split))])
    assert torch.equal(normalise(decoded.images, MEAN, STD), expected)
    assert decoded.labels.tolist() == split.targets
    batches = list(EvalBatches(decoded, 4, mean=MEAN, std=STD))
    assert [len(y) for _, y in batches] == [4, 2] and torch.equal(torch.cat([x for x, _ in batches]), expected)


def test_the_cache_is_read_back_and_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    dataset = _dataset(tmp_path)
    loads = CountingLoads(monkeypatch)
    first = decode_eval_images(dataset.val(), 16, cache_dir=tmp_path / "cache")
    assert loads.counts == {"val": 6}
    assert len(list((tmp_path / "cache" / "eval_images").glob("*.pt"))) == 1
    again = decode_eval_images(dataset.val(), 16, cache_dir=tmp_path / "cache")
    assert loads.counts == {"val": 6} and torch.equal(again.images, first.images)  # read, not decoded
    decode_eval_images(dataset.val(), 12, cache_dir=tmp_path / "cache")  # another input size: another entry
    assert loads.counts == {"val": 12} and len(list((tmp_path / "cache" / "eval_images").glob("*.pt"))) == 2

    image = tmp_path / "toy" / "val" / "red" / "001.png"
    Image.new("RGB", (20, 20), (0, 0, 255)).save(image)  # rewritten: the key changes, so it is decoded again
    os.utime(image, ns=(1, 1))
    changed = decode_eval_images(dataset.val(), 16, cache_dir=tmp_path / "cache")
    assert loads.counts == {"val": 18} and not torch.equal(changed.images, first.images)

    for path in (tmp_path / "cache" / "eval_images").glob("*.pt"):  # truncated: a warning, set aside, decoded again
        path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="fgdd.cache.keyed"):
        repaired = decode_eval_images(dataset.val(), 16, cache_dir=tmp_path / "cache")
    assert "computing it again" in caplog.text and loads.counts == {"val": 24}
    assert len(list((tmp_path / "cache" / "eval_images").glob("*.pt.untrusted"))) == 1  # set aside, not deleted
    assert torch.equal(repaired.images, changed.images)
    assert torch.equal(decode_eval_images(dataset.val(), 16, cache_dir=tmp_path / "cache").images, changed.images)
    assert loads.counts == {"val": 24}  # the repaired file is read back
    assert not list((tmp_path / "cache" / "eval_images").glob(".*.tmp"))  # nothing half-written left


def test_eval_images_refuse_bad_input() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        EvalImages(torch.zeros(2, 3, 4, 4), torch.zeros(2))
    with pytest.raises(ConfigError, match="empty"):
        EvalImages(torch.zeros(0, 3, 4, 4, dtype=torch.uint8), torch.zeros(0))


def test_a_run_decodes_the_val_split_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # teacher training (a validation every epoch), the teacher's accuracy and every student validation (three
    # here) share one decode; a second run on the same cache decodes nothing
    from fgdd.run import run
    from tests.test_run import tiny_cfg

    loads = CountingLoads(monkeypatch)
    overrides = ["teacher.recipe.epochs=2", "evaluator.epochs=3", "evaluator.eval_every=1",
                 "evaluator.tail_fraction=1.0"]
    metrics = run(tiny_cfg(tmp_path, *overrides), tmp_path / "first")
    val_root = next(p for p in (tmp_path / "data").rglob("*") if p.is_dir() and p.name in ("val", "test"))
    val_images = sum(1 for p in val_root.rglob("*") if p.is_file())
    assert 0 < loads.counts[val_root.name] == val_images
    assert 0.0 <= metrics["student/top1_final"] <= 1.0
    loads.counts.clear()
    run(tiny_cfg(tmp_path, *overrides, "seed=1"), tmp_path / "second")
    assert loads.counts.get(val_root.name, 0) == 0


def test_ddp_ranks_validate_disjoint_shares_that_cover_the_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import fgdd.evaluation.eval_images as eval_images

    images = EvalImages(torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 3, 2, 2), torch.arange(7))
    seen = []
    for rank in range(3):
        monkeypatch.setattr(eval_images, "rank_and_world", lambda rank=rank: (rank, 3))
        batches = list(EvalBatches(images, 2))
        assert len(batches) == len(EvalBatches(images, 2)) >= 1  # every rank has a batch (Lightning needs one)
        seen += torch.cat([y for _, y in batches]).tolist()
        assert len(list(images.batches(2))) == 4  # unsharded: everything
    assert sorted(seen) == list(range(7))  # each image exactly once over the ranks


def test_a_split_too_large_to_hold_is_decoded_at_every_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _dataset(tmp_path)
    held = decode_eval_images(dataset.val(), 16)
    loads = CountingLoads(monkeypatch)
    streamed = decode_eval_images(dataset.val(), 16, max_bytes=100, cache_dir=tmp_path / "cache")
    assert loads.counts == {} and not (tmp_path / "cache").exists()  # nothing decoded or stored up front
    for _ in range(2):
        batches = list(streamed.batches(4))
        assert torch.equal(torch.cat([x for x, _ in batches]), held.images)
    assert loads.counts == {"val": 12} and streamed.num_batches(4) == 2 and len(streamed) == 6
