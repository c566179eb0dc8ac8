"""ImageSplit / ImageDataset basics on small folders built in tmp_path: modes, errors, order, transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgdd.data import ImageFolderDataset, eval_transform, open_rgb, resize_to_tensor, resolve_data_root
from fgdd.data.transforms import teacher_train_transform
from fgdd.errors import ClassMismatchError, ConfigError, CorruptImageError, DatasetNotFoundError


def _write(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def _rgb(seed: int, size: int = 12) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _folder_dataset(tmp_path: Path, classes: dict[str, int]) -> Path:
    for split in ("train", "val"):
        for c, n in classes.items():
            for i in range(n):
                _write(tmp_path / "data" / "toy" / split / c / f"{i:03d}.png", _rgb(i))
    return tmp_path / "data"


def test_modes_convert_to_rgb(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    files = {
        "L": _write(tmp_path / "l.png", Image.fromarray(grey, "L")),
        "LA": _write(tmp_path / "la.png", Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA")),
        "P": _write(tmp_path / "p.png", Image.fromarray(grey, "L").convert("P")),
        "CMYK": _write(tmp_path / "cmyk.jpg", _rgb(1, 8).convert("CMYK"), "JPEG"),
        "1": _write(tmp_path / "one.bmp", Image.fromarray(grey > 100)),
        "TIF": _write(tmp_path / "x.TIFF", _rgb(2, 8)),
        "WEBP": _write(tmp_path / "x.webp", _rgb(3, 8)),
    }
    for what, path in files.items():
        image = open_rgb(path)
        assert image.mode == "RGB" and image.size == (8, 8), what
    l_rgb = np.asarray(open_rgb(files["L"]))
    assert (l_rgb == grey[..., None]).all()


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    out = np.asarray(open_rgb(_write(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))))
    assert (out[:2] == 200).all() and (out[2:] == 0).all()


def test_16bit_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 8-bit 0, 1, 128, 255
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # a real 16-bit file
    out = np.asarray(open_rgb(path))
    assert out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_image_names_file(tmp_path: Path, damage: str) -> None:
    good = _write(tmp_path / "good.jpg", _rgb(0, 64), "JPEG").read_bytes()
    bad = tmp_path / "broken_image.jpg"
    bad.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not an image at all")
    with pytest.raises(CorruptImageError, match="broken_image.jpg"):
        open_rgb(bad)


def test_split_order_relpath_and_transform(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path, {"a": 3, "b": 2})
    (root / "toy" / "train" / "a" / "notes.txt").write_text("ignored: not an image")
    _write(root / "toy" / "train" / "b" / "zz.JPG", _rgb(9), "JPEG")  # upper-case extension counts
    ds = ImageFolderDataset(str(root), classes=["a", "b"], input_size=8, factor=1, subdir="toy")
    train = ds.train()
    assert len(train) == 6 and train.targets == [0, 0, 0, 1, 1, 1]
    assert [train.relpath(i) for i in range(len(train))] == [
        "train/a/000.png", "train/a/001.png", "train/a/002.png", "train/b/000.png", "train/b/001.png", "train/b/zz.JPG"
    ]
    assert train.indices_of_class(1) == [3, 4, 5]
    image, label = train[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 0
    tensors = train.with_transform(eval_transform(8, ds.mean, ds.std))
    x, _ = tensors[4]
    assert x.shape == (3, 8, 8) and train.transform is None  # the copy has the transform, not the original
    assert ds.train() is train  # the scan happens once
    assert ds.class_names == ["a", "b"]


def test_missing_root_names_path_and_env(tmp_path: Path) -> None:
    ds = ImageFolderDataset(str(tmp_path / "nowhere"), classes=["a"], input_size=8, factor=1, subdir="toy")
    with pytest.raises(DatasetNotFoundError, match=r"nowhere.*FGDD_DATA_DIR"):
        ds.train()


def test_resolve_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FGDD_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match="FGDD_DATA_DIR"):
        resolve_data_root(None)
    monkeypatch.setenv("FGDD_DATA_DIR", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    assert resolve_data_root("/elsewhere") == Path("/elsewhere")


def test_unknown_class_folder_is_listed(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path, {"a": 1, "b": 1, "stray": 1})
    ds = ImageFolderDataset(str(root), classes=["a", "b"], input_size=8, factor=1, subdir="toy")
    with pytest.raises(ClassMismatchError, match=r"extra 1: \['stray'\]"):
        ds.train()
    subset = ImageFolderDataset(str(root), classes=["a", "b"], input_size=8, factor=1, subdir="toy",
                                allow_extra_folders=True)
    assert subset.train().classes == ["a", "b"]


def test_missing_class_and_wrong_order(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path, {"a": 1, "b": 1})
    missing = ImageFolderDataset(str(root), classes=["a", "b", "c"], input_size=8, factor=1, subdir="toy")
    with pytest.raises(ClassMismatchError, match=r"missing 1: \['c'\]"):
        missing.train()
    wrong = ImageFolderDataset(str(root), classes=["b", "a"], input_size=8, factor=1, subdir="toy")
    with pytest.raises(ClassMismatchError, match="another order from position 0: expected 'b', got 'a'"):
        wrong.train()


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path, {"a": 1})
    (root / "toy" / "train" / "empty").mkdir()
    (root / "toy" / "train" / "empty" / "readme.txt").write_text("no images here")
    ds = ImageFolderDataset(str(root), classes=["a", "empty"], input_size=8, factor=1, subdir="toy")
    with pytest.raises(DatasetNotFoundError, match=r"train/empty"):
        ds.train()


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        ImageFolderDataset("/x", classes=["a", "a"], input_size=8, factor=1)
    with pytest.raises(ConfigError, match="class_names"):
        ImageFolderDataset("/x", classes=["a", "b"], class_names=["only one"], input_size=8, factor=1)
    with pytest.raises(ConfigError, match="multiple of factor"):
        ImageFolderDataset("/x", classes=["a"], input_size=30, factor=4)


def test_download_unsupported_for_plain_folders(tmp_path: Path) -> None:
    from fgdd.errors import DownloadUnavailableError

    ds = ImageFolderDataset(str(tmp_path), classes=["a"], input_size=8, factor=1, subdir="imagenet", download=True)
    with pytest.raises(DownloadUnavailableError, match=str(tmp_path / "imagenet")):
        ds.train()


def test_transforms_shapes_and_values() -> None:
    image = _rgb(0, 40)
    x = eval_transform(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image)
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1
    torch.manual_seed(0)
    y = teacher_train_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(image)
    assert y.shape == (3, 32, 32)
    z = resize_to_tensor(16)(Image.new("RGB", (40, 20), (255, 0, 0)))
    assert z.shape == (3, 16, 16) and torch.allclose(z[0], torch.ones(16, 16))
