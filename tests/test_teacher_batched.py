"""The teacher's batched pipeline (fgdd.training.batches, fgdd.training.train_images): the same pixels as the
per-image transforms for the same draws, on real photos; draws that depend only on (seed, epoch), so a resumed
training is the uninterrupted one; the cache key covers pipeline and precision."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torchvision.transforms import functional as TF

from fgdd.data import ImageFolderDataset, ImageSplit
from fgdd.data.transforms import SquareResize
from fgdd.evaluation.augment import BatchAugment
from fgdd.teacher import train_teacher
from fgdd.training.batches import BatchedEpochs, PadCropFlip
from fgdd.training.classifier import ClassifierModule
from fgdd.training.teacher_recipe import TeacherRecipe
from fgdd.training.train_images import decode_train_images, storage_size
from tests.test_teacher import CONV3, QUIET, _folder_dataset, _write_toy_images

WOOF = ["n02086240", "n02087394", "n02088364", "n02089973", "n02093754",
        "n02096294", "n02099601", "n02105641", "n02111889", "n02115641"]  # fmt: skip
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def woof_photos(shared_data) -> ImageSplit:
    # 2 aspect-kept ImageWoof photos per class (shorter side 146 px, most 4:3 or 3:4)
    root = shared_data("imagewoof2-146")
    dataset = ImageFolderDataset(root=str(root), subdir=".", classes=WOOF, input_size=128, factor=2, name="woof",
                                 aspect="crop")
    split = dataset.train()
    keep = [i for label in range(len(WOOF)) for i in split.indices_of_class(label)[:2]]
    return split.subset(keep)


def test_pad_crop_flip_batch_gives_the_per_image_pixels_exactly(woof_photos: ImageSplit, tmp_path: Path) -> None:
    size, padding = 64, 8
    pixels, labels = decode_train_images(woof_photos, size, "crop", cache_dir=tmp_path)  # (20, 3, 64, 64) uint8
    assert pixels.shape == (20, 3, size, size) and labels.tolist() == woof_photos.targets
    augment = PadCropFlip(size, padding, MEAN, STD)
    index = torch.tensor([3, 0, 19, 19, 7, 12, 5])
    params = augment.draw(len(index), size, size, torch.Generator().manual_seed(0))
    batch = augment.apply_batch(pixels, index, params)  # (7, 3, 64, 64)
    for k, i in enumerate(index.tolist()):
        # teacher_train_transform's steps with these draws: square resize, reflect pad, crop, flip, to tensor, normalise
        image = SquareResize(size, "crop")(woof_photos.load_rgb(i))
        image = TF.crop(TF.pad(image, padding, padding_mode="reflect"), int(params["top"][k]), int(params["left"][k]),
                        size, size)
        if params["flip"][k]:
            image = TF.hflip(image)
        expected = TF.normalize(TF.to_tensor(image), MEAN, STD)
        torch.testing.assert_close(batch[k], expected, rtol=0, atol=0)


def test_random_resized_crop_batch_gives_the_per_image_pixels(woof_photos: ImageSplit, tmp_path: Path) -> None:
    size = 128
    stored = storage_size(size, "random_resized_crop")
    assert stored == 144  # RDED's evaluation resize (128 // 7 * 8): crops of most of the photo are resized down
    pixels, _ = decode_train_images(woof_photos, stored, "crop", cache_dir=tmp_path)
    augment = BatchAugment(size, 1, MEAN, STD, scale=(0.08, 1.0))
    index = torch.tensor([1, 4, 4, 18, 9, 0])
    params = augment.draw(len(index), stored, stored, torch.Generator().manual_seed(1))
    batch = augment.apply_batch(pixels, index, params)  # (6, 3, 128, 128)
    for k, i in enumerate(index.tolist()):
        top, left, height, width = params["box"][k].tolist()
        image = TF.resized_crop(pixels[i].float() / 255, top, left, height, width, [size, size], antialias=True)
        if params["flip"][k]:
            image = image.flip(-1)
        torch.testing.assert_close(batch[k], TF.normalize(image, MEAN, STD), rtol=0, atol=1e-5)


def test_decoded_train_split_is_cached_and_squared_by_aspect(woof_photos: ImageSplit, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    crop, _ = decode_train_images(woof_photos, 32, "crop", cache_dir=tmp_path)
    pad, _ = decode_train_images(woof_photos, 32, "pad", cache_dir=tmp_path)
    assert not torch.equal(crop, pad)  # another aspect, another tensor (and another cache entry)
    assert len(list((tmp_path / "train_images").glob("*.pt"))) == 2
    monkeypatch.setattr("fgdd.data.decoded.decode_split", lambda *a, **k: pytest.fail("decoded again"))
    again, _ = decode_train_images(woof_photos, 32, "crop", cache_dir=tmp_path)
    assert torch.equal(again, crop)


def test_epoch_draws_depend_only_on_seed_and_epoch() -> None:
    labels = torch.arange(30) % 3
    augment = PadCropFlip(16, 2, MEAN, STD)

    def epoch_batches(plan: BatchedEpochs) -> list[torch.Tensor]:
        return [torch.cat([p["index"], p["top"], p["left"], p["flip"].long()]) for p, _ in plan]

    uninterrupted = BatchedEpochs(labels, 16, 16, augment, batch_size=8, seed=5, stream="teacher-epoch")
    first, second = epoch_batches(uninterrupted), epoch_batches(uninterrupted)
    resumed = BatchedEpochs(labels, 16, 16, augment, batch_size=8, seed=5, stream="teacher-epoch")
    resumed.set_epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(epoch_batches(resumed), second))
    assert not all(torch.equal(a, b) for a, b in zip(first, second))
    other_stream = BatchedEpochs(labels, 16, 16, augment, batch_size=8, seed=5, stream="student-epoch")
    assert not all(torch.equal(a, b) for a, b in zip(epoch_batches(other_stream), first))


@pytest.mark.parametrize("augment", ["pad_crop_flip", "random_resized_crop"])
def test_batched_teacher_resumed_after_a_kill_equals_the_uninterrupted_one(
    augment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_toy_images(tmp_path / "data", per_class=8)  # 16 images, batch 8: 2 steps an epoch
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    recipe = TeacherRecipe(epochs=2, batch_size=8, lr=0.05, seed=0, augment=augment, pipeline="batched")
    arch = {**CONV3, "width": 8}
    uninterrupted, _ = train_teacher(arch, dataset, tmp_path / "once", recipe, **QUIET)

    original = ClassifierModule.training_step

    def killed_in_second_epoch(self, batch, batch_idx):
        if self.current_epoch == 1:
            raise RuntimeError("killed")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(ClassifierModule, "training_step", killed_in_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        train_teacher(arch, dataset, tmp_path / "killed", recipe, **QUIET)
    monkeypatch.undo()
    resumed, meta = train_teacher(arch, dataset, tmp_path / "killed", recipe, **QUIET)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), uninterrupted.state_dict().values()))
    assert meta.recipe["pipeline"] == "batched-32px"


def test_teacher_cache_key_covers_pipeline_and_precision(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_toy_images(tmp_path / "data", per_class=4)
    dataset = _folder_dataset(tmp_path / "data", "toy", ["blue", "red"], 32)
    recipe = TeacherRecipe(epochs=1, batch_size=8, lr=0.05, seed=0)
    arch = {**CONV3, "width": 4}
    train_teacher(arch, dataset, tmp_path / "cache", replace(recipe, pipeline="loader", precision="fp32"), **QUIET)
    train_teacher(arch, dataset, tmp_path / "cache", replace(recipe, pipeline="batched", precision="fp32"), **QUIET)
    train_teacher(arch, dataset, tmp_path / "cache", replace(recipe, pipeline="batched", precision="bf16"), **QUIET)
    with caplog.at_level(logging.INFO, logger="fgdd.teacher"):  # over the memory budget: the loader, said in the log
        train_teacher(arch, dataset, tmp_path / "cache",
                      replace(recipe, pipeline="batched", precision="fp32", max_decoded_gb=1e-6), **QUIET)
    assert "above teacher.recipe.max_decoded_gb=1e-06; training through the per-image loader" in caplog.text
    recipes = [json.loads(p.read_text())["recipe"] for p in (tmp_path / "cache" / "teachers").glob("*/cache_key.json")]
    # the loader in fp32 keeps the key teachers had before these settings existed
    assert sorted((r.get("pipeline", "-"), r.get("precision", "-")) for r in recipes) == [
        ("-", "-"), ("batched-32px", "-"), ("batched-32px", "bf16")]  # the fallback reused the loader's teacher
