"""dataset.aspect: how a non-square image becomes square on the whole-image paths (fgdd's resize path,
random_real) and in the teacher's training transform, and what the manifest's box then says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from fgdd.data import ImageFolderDataset, SquareResize, square_box, square_image, teacher_train_transform
from fgdd.errors import ConfigError
from fgdd.selection import RandomRealSelector
from fgdd.selection.candidates import crop_to_patch
from fgdd.selection.dynamic import ForegroundAwareSelector
from fgdd.teacher import train_teacher
from fgdd.thresholds import always
from fgdd.training.teacher_recipe import TeacherRecipe
from tests.test_dynamic_selection import fake_dataset
from tests.test_selection import MEAN, STD, BrightnessObserver, MemorySplit, memory_spec

CPU = torch.device("cpu")
GREEN, RED = (0, 255, 0), (255, 0, 0)


def wide_image(width: int = 60, height: int = 20) -> Image.Image:
    """Red, with a green centre square of side ``height``: only crop keeps nothing but green."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(GREEN, ((width - height) // 2, 0, (width + height) // 2, height))
    return image


def mean_rgb(image: Image.Image | torch.Tensor) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64) if isinstance(image, Image.Image) else image.permute(1, 2, 0).numpy()
    return array.reshape(-1, 3).mean(axis=0)


def test_square_box_per_aspect_in_the_manifests_convention() -> None:
    # box = (top, left, height, width) in source pixels; size = (width, height) as PIL gives it
    assert square_box((60, 20), "crop") == (0, 20, 20, 20)
    assert square_box((20, 60), "crop") == (20, 0, 20, 20)
    assert square_box((60, 20), "squash") == (0, 0, 20, 60)
    assert square_box((60, 20), "pad") == (-20, 0, 60, 60)  # reaches past the short sides
    assert square_box((20, 60), "pad") == (0, -20, 60, 60)
    for aspect in ("crop", "squash", "pad"):
        assert square_box((32, 32), aspect) == (0, 0, 32, 32)  # square images are the same under every setting
    with pytest.raises(ConfigError, match="crop"):
        square_box((60, 20), "stretch")


def test_each_aspect_makes_the_square_it_says() -> None:
    image = wide_image()
    crop, squash, pad = (np.asarray(square_image(image, 30, a)) for a in ("crop", "squash", "pad"))
    assert (crop == GREEN).all()  # the centre square
    assert crop.shape == squash.shape == pad.shape == (30, 30, 3)
    assert (squash[:, 0] == RED).all() and (squash[:, 15] == GREEN).all()  # all of it, stretched
    assert (pad[:8] == 0).all() and (pad[-8:] == 0).all()  # black bars above and below
    assert (pad[12:18, 0] == RED).all() and (pad[12:18, 15] == GREEN).all()  # the whole image, proportions kept


def test_squash_is_the_plain_resize_teachers_were_trained_with_before() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(SquareResize(24, "squash")(image)), np.asarray(T.Resize((24, 24))(image)))


def test_the_teacher_transform_keeps_proportions_with_crop() -> None:
    torch.manual_seed(0)
    images = [teacher_train_transform(32, MEAN, STD, aspect)(wide_image(96, 32)) for aspect in ("crop", "squash")]
    crop, squash = (mean_rgb(x) for x in images)
    assert crop[1] > 0.8 and crop[0] < 0.2  # green: the centre square (+- the 1/8 random shift, reflected)
    assert squash[0] > 0.5  # mostly the red sides, squeezed in


def test_whole_image_paths_record_the_square_they_used(tmp_path) -> None:
    split = MemorySplit({0: [wide_image()] * 4, 1: [wide_image()] * 4}, ["a", "b"])
    settings = {"ipc": 1, "seed": 0, "spec": memory_spec(split.classes), "device": CPU}
    for aspect, box in (("crop", (0, 20, 20, 20)), ("pad", (-20, 0, 60, 60)), ("squash", (0, 0, 20, 60))):
        selection = RandomRealSelector(aspect=aspect).select(split, None, **settings)
        patch = selection[0][0]
        assert patch.box == box and patch.source_size == (60, 20)
        # random_real resizes the 8-bit image with PIL (as an image loader would); fgdd crops the float tensor (RDED)
        assert torch.equal(patch.pixels, crop_to_patch(wide_image(), box, 32, crop_from="pil"))
        fgdd = ForegroundAwareSelector(factor=2, segmenter=None, threshold=always(),  # nothing segmented
                                       cache_dir=str(tmp_path / aspect), num_candidates=2, mipc=4, aspect=aspect)
        chosen = fgdd.select(split, BrightnessObserver(2), **settings, dataset=fake_dataset(split))
        assert all(p.path == "resize" and p.box == box for p in chosen[0])
        assert torch.equal(chosen[0][0].pixels, crop_to_patch(wide_image(), box, 16))  # one 2x2 mosaic cell


def test_the_teacher_cache_key_records_any_aspect_but_squash(tmp_path) -> None:
    for split, n in (("train", 4), ("val", 2)):
        for value, name in ((40, "a"), (200, "b")):
            (tmp_path / "toy" / split / name).mkdir(parents=True)
            for k in range(n):
                Image.new("RGB", (24, 16), (value, value, 255 - value)).save(tmp_path / "toy" / split / name / f"{k}.png")
    arch = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 2, "width": 4, "norm": "batch"}
    cpu = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}
    recipes = {}
    for aspect in ("squash", "crop"):
        dataset = ImageFolderDataset(str(tmp_path), ["a", "b"], input_size=16, factor=1, subdir="toy", aspect=aspect)
        train_teacher(arch, dataset, tmp_path / "cache", TeacherRecipe(epochs=1, batch_size=4, lr=0.01),
                      trainer_kwargs=cpu)
    for key_file in (tmp_path / "cache" / "teachers").glob("*/cache_key.json"):
        recipe = json.loads(key_file.read_text())["recipe"]
        recipes[recipe.get("aspect", "squash")] = recipe
    assert set(recipes) == {"squash", "crop"}  # two teachers; squash keeps the key teachers had before the setting
    assert "aspect" not in recipes["squash"] and recipes["crop"]["aspect"] == "crop"
