"""Bad input, each ending in a handled outcome or one clear message: unreadable images (skipped up to a limit, in
every stage that reads them), unusual pixel formats, unreadable data folders, and segmenters that find nothing or
return the wrong masks."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgdd.data import ImageFolderDataset, eval_transform
from fgdd.errors import CorruptImageError, DatasetNotFoundError, FgddError
from fgdd.foreground.occupancy import OccupancyStore, cache_key, measure_occupancy
from fgdd.selection import RDEDSelector
from fgdd.selection.dynamic import ForegroundAwareSelector
from fgdd.teacher import train_teacher
from fgdd.thresholds import QuantileThreshold
from fgdd.training.teacher_recipe import TeacherRecipe
from tests.test_dynamic_selection import fake_dataset
from tests.test_selection import MEAN, STD, BrightnessObserver, make_split, memory_spec

CPU = torch.device("cpu")
CLASSES = ["blue", "red"]


def write_folder(root: Path, per_class: int, size: int = 16) -> Path:
    """<root>/toy/{train,val}/{blue,red}/NNN.png: noisy blue-ish and red-ish images, each one different."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 4)):
        for label, name in enumerate(CLASSES):
            folder = root / "toy" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 120, size=(size, size, 3))
                pixels[..., 2 - 2 * label] += 135
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def toy(root: Path, **kwargs) -> ImageFolderDataset:
    return ImageFolderDataset(root=str(root), subdir="toy", classes=CLASSES, input_size=16, factor=1, name="toy",
                              **kwargs)


def damage(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:40])  # truncated: the PNG header survives, the pixels do not
    return path


# -- unreadable images ---------------------------------------------------------------------------------------------


def test_an_unreadable_image_is_skipped_with_a_warning_naming_it(tmp_path, caplog) -> None:
    write_folder(tmp_path, per_class=20)
    bad = damage(tmp_path / "toy" / "train" / "blue" / "003.png")
    split = toy(tmp_path, max_bad_fraction=0.05).train().with_transform(eval_transform(16, MEAN, STD))
    with caplog.at_level(logging.WARNING):
        items = [split[i] for i in range(len(split))]
    assert len(items) == 40 and [label for _, label in items] == split.targets  # every item, labels unchanged
    assert torch.equal(items[3][0], items[4][0])  # its class's next image took its place
    assert [r.getMessage() for r in caplog.records if "003.png" in r.getMessage()] and str(bad) in split.unreadable


def test_more_unreadable_images_than_the_limit_stop_with_their_names(tmp_path) -> None:
    write_folder(tmp_path, per_class=20)
    for name in ("blue/003.png", "red/007.png"):
        damage(tmp_path / "toy" / "train" / name)
    split = toy(tmp_path, max_bad_fraction=0.03).train()  # 40 images: one is tolerated, two are not
    split[3]
    with pytest.raises(CorruptImageError) as error:
        [split[i] for i in range(len(split))]
    message = str(error.value)
    assert "blue/003.png" in message and "red/007.png" in message and "max_bad_fraction=0.03" in message


def test_teacher_training_skips_an_unreadable_image(tmp_path, caplog) -> None:
    write_folder(tmp_path / "data", per_class=12)
    damage(tmp_path / "data" / "toy" / "train" / "red" / "005.png")
    dataset = toy(tmp_path / "data", max_bad_fraction=0.05)
    arch = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 2, "width": 8, "norm": "batch"}
    cpu = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "deterministic": True}
    with caplog.at_level(logging.WARNING):
        _, meta = train_teacher(arch, dataset, tmp_path / "cache", TeacherRecipe(epochs=1, batch_size=8, lr=0.05),
                                trainer_kwargs=cpu, logger=False)
    assert 0.0 <= meta.val_top1 <= 1.0  # trained and measured
    assert any("red/005.png" in r.getMessage() for r in caplog.records)


def test_selection_skips_unreadable_images_and_stops_beyond_its_limit(tmp_path, caplog) -> None:
    write_folder(tmp_path, per_class=8, size=32)
    for name in ("blue/001.png", "red/002.png"):
        damage(tmp_path / "toy" / "train" / name)
    split = toy(tmp_path).train()
    settings = dict(ipc=1, seed=0, spec=memory_spec(split.classes), device=CPU)
    with caplog.at_level(logging.WARNING):
        selection = RDEDSelector(factor=1, num_candidates=2, mipc=8, max_bad_fraction=0.5).select(
            split, BrightnessObserver(2), **settings)
    sources = {p.source for patches in selection.values() for p in patches}
    assert not sources & {"train/blue/001.png", "train/red/002.png"}
    assert any("blue/001.png" in r.getMessage() for r in caplog.records)
    with pytest.raises(FgddError, match=r"max_bad_fraction=0\.0.*blue/001\.png"):
        RDEDSelector(factor=1, num_candidates=2, mipc=8, max_bad_fraction=0.0).select(
            split, BrightnessObserver(2), **settings)


# -- pixel formats -------------------------------------------------------------------------------------------------


def png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 48-bit PNG (Pillow reads these but cannot write them)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_every_pixel_format_becomes_8_bit_rgb_in_a_split(tmp_path) -> None:
    folder = tmp_path / "toy" / "train" / "blue"
    folder.mkdir(parents=True)
    deep = np.zeros((16, 16, 3), dtype=np.uint16)
    deep[0, :4] = [[0, 0, 0], [257, 257, 257], [32896, 32896, 32896], [65535, 65535, 65535]]
    (folder / "a_rgb48.png").write_bytes(png_16bit_rgb(deep))
    grey16 = np.zeros((16, 16), dtype=np.uint16)
    grey16[0, :4] = [0, 257, 32896, 65535]
    Image.fromarray(grey16).save(folder / "b_grey16.tif")
    colour = Image.fromarray(np.full((16, 16, 3), (200, 40, 10), dtype=np.uint8))
    colour.convert("CMYK").save(folder / "c_cmyk.jpg", quality=95)
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., :3], rgba[:8, :, 3] = 200, 255  # bottom half transparent
    Image.fromarray(rgba, "RGBA").save(folder / "d_rgba.png")
    Image.fromarray(np.full((16, 16), 90, dtype=np.uint8), "L").save(folder / "e_grey.png")
    palette = Image.fromarray(np.full((16, 16), 3, dtype=np.uint8), "L").convert("P")
    palette.save(folder / "f_palette.png", transparency=3)
    (tmp_path / "toy" / "train" / "red").mkdir()
    colour.save(tmp_path / "toy" / "train" / "red" / "x.png")

    split = toy(tmp_path, max_bad_fraction=0.0).train()  # nothing may be skipped
    images = {split.relpath(i).split("/")[-1]: np.asarray(split.load_rgb(i)) for i in range(len(split))}
    assert all(a.shape == (16, 16, 3) and a.dtype == np.uint8 for a in images.values())
    for name in ("a_rgb48.png", "b_grey16.tif"):  # 16 bits scaled to 8, not clipped
        assert images[name][0, :4, 0].tolist() == [0, 1, 128, 255], name
    assert np.abs(images["c_cmyk.jpg"].astype(int) - (200, 40, 10)).max() <= 8
    assert (images["d_rgba.png"][:8] == 200).all() and (images["d_rgba.png"][8:] == 0).all()
    assert (images["e_grey.png"] == 90).all() and (images["f_palette.png"] == 0).all()
    transformed = split.with_transform(eval_transform(16, MEAN, STD))
    assert all(transformed[i][0].shape == (3, 16, 16) for i in range(len(split)))


# -- data folders --------------------------------------------------------------------------------------------------


def test_an_unreadable_data_folder_is_one_clear_error(tmp_path, monkeypatch) -> None:
    write_folder(tmp_path, per_class=2)
    locked = tmp_path / "toy" / "train"
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)  # chmod cannot lock root out, so the OS's answer is simulated
    with pytest.raises(DatasetNotFoundError, match=f"{locked}.*Permission denied"):
        toy(tmp_path).train()


def test_a_data_root_that_is_a_file_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "notafolder").write_text("")
    with pytest.raises(DatasetNotFoundError, match="notafolder"):
        toy(tmp_path / "notafolder").train()


# -- segmenters ----------------------------------------------------------------------------------------------------


class Nothing:
    """A segmenter that finds nothing: every mask empty (as Grounding DINO without a detection)."""

    name = "nothing"

    def setup(self, context) -> None:
        pass

    def cache_key(self) -> dict:
        return {"name": self.name}

    def masks(self, images, *, labels, prompts, sources):
        return [np.zeros((im.height, im.width), dtype=bool) for im in images]


class Broken(Nothing):
    def __init__(self, drop: int = 0, shape: tuple[int, int] | None = None) -> None:
        self.drop, self.shape = drop, shape

    def masks(self, images, *, labels, prompts, sources):
        masks = super().masks(images, labels=labels, prompts=prompts, sources=sources)[self.drop :]
        return [np.zeros(self.shape, dtype=bool) for _ in masks] if self.shape else masks


def test_an_image_where_the_segmenter_finds_nothing_has_occupancy_zero(tmp_path) -> None:
    split = make_split(per_class=4)
    store = OccupancyStore(tmp_path, cache_key("memory", split.classes, "memory", Nothing()))
    values = measure_occupancy(Nothing(), split, range(8), split.classes, store, batch_size=3)
    assert values == {split.relpath(i): 0.0 for i in range(8)}


def test_images_where_the_segmenter_finds_nothing_take_the_crop_path(tmp_path) -> None:
    split = make_split(per_class=6)
    selector = ForegroundAwareSelector(factor=2, segmenter=Nothing(), threshold=QuantileThreshold(0.7),
                                       cache_dir=str(tmp_path), num_candidates=3, mipc=6)
    selection = selector.select(split, BrightnessObserver(2), ipc=1, seed=0, spec=memory_spec(split.classes),
                                device=CPU, dataset=fake_dataset(split))
    assert {p.path for patches in selection.values() for p in patches} == {"crop"}  # = RDED, as segmenter=none


@pytest.mark.parametrize("segmenter,message", [(Broken(drop=1), "returned 2 masks for 3 images"),
                                               (Broken(shape=(4, 4)), r"mask of shape \(4, 4\)")])
def test_a_segmenter_returning_wrong_masks_is_stopped_before_anything_is_stored(segmenter, message, tmp_path):
    split = make_split(per_class=4)
    store = OccupancyStore(tmp_path, cache_key("memory", split.classes, "memory", segmenter))
    with pytest.raises(FgddError, match=message):
        measure_occupancy(segmenter, split, range(8), split.classes, store, batch_size=3)
    assert store.values == {} and not store.path.exists()
