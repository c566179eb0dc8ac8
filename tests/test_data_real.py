"""Real images from the shared archives (CIFAR-10 as JPEG, ImageNette at 128 px) through the dataset classes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fgdd.data import CIFAR10Dataset, ImagenetteDataset, eval_transform, teacher_train_transform

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NETTE = "n01440764 n02102040 n02979186 n03000684 n03028079 n03394916 n03417042 n03425413 n03445777 n03888257".split()


def test_cifar10_jpeg_folders(shared_data: Callable[[str], Path]) -> None:
    folder = shared_data("cifar10-jpeg")
    ds = CIFAR10Dataset(str(folder.parent), classes=CIFAR10, subdir=folder.name)
    train, val = ds.train(), ds.val()
    assert len(train) == 50_000 and len(val) == 10_000
    assert len(train.indices_of_class(9)) == 5_000 and val.indices_of_class(0)[:2] == [0, 1]
    assert train.relpath(0) == "train/airplane/0000.jpg" and val.relpath(len(val) - 1).startswith("test/truck/")
    image, label = val[len(val) - 1]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and label == 9
    x, _ = train.with_transform(teacher_train_transform(32, ds.mean, ds.std))[123]
    assert x.shape == (3, 32, 32)


def test_imagenette_128(shared_data: Callable[[str], Path]) -> None:
    folder = shared_data("imagenette2-128")
    ds = ImagenetteDataset(str(folder.parent), classes=NETTE, subdir=folder.name, input_size=128, factor=2)
    train, val = ds.train(), ds.val()
    assert (len(train), len(val)) == (9_469, 3_925)
    assert train.classes == NETTE and sorted(set(val.targets)) == list(range(10))
    x, label = val.with_transform(eval_transform(128, ds.mean, ds.std))[val.indices_of_class(4)[0]]
    assert x.shape == (3, 128, 128) and label == 4
    assert val.load_rgb(0).mode == "RGB"
