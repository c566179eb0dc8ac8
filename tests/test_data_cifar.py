"""CIFAR in torchvision's pickled format (tiny fake batches written here) and the offline download error."""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from fgdd.data import CIFAR10Dataset, CIFAR100Dataset, ImagenetteDataset, ImageWoofDataset, PickledImageSplit
from fgdd.data import download as download_module
from fgdd.errors import ClassMismatchError, ConfigError, DatasetNotFoundError, DownloadUnavailableError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _pixels(labels: list[int], offset: int) -> np.ndarray:
    # Image k is filled with one value per channel, so decoded images can be traced back to their row.
    n = len(labels)
    data = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for k in range(n):
        data[k, 0], data[k, 1], data[k, 2] = offset + k, labels[k], 7
    return data.reshape(n, 3072)


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_fake_cifar10(folder: Path, label_names: list[str] = CLASSES) -> None:
    """The official layout: data_batch_1..5, test_batch, batches.meta (dicts; labels index label_names)."""
    _dump(folder / "batches.meta", {"label_names": label_names, "num_cases_per_batch": 4, "num_vis": 3072})
    for b in range(1, 6):
        labels = [(4 * (b - 1) + k) % 10 for k in range(4)]
        _dump(folder / f"data_batch_{b}", {"batch_label": f"training batch {b} of 5", "labels": labels,
                                           "data": _pixels(labels, offset=10 * b), "filenames": [f"f{k}.png" for k in range(4)]})
    labels = list(range(10)) + [3]
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": _pixels(labels, 100),
                                  "filenames": [f"t{k}.png" for k in range(11)]})


def test_pickled_cifar10(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")
    ds = CIFAR10Dataset(str(tmp_path), classes=CLASSES)
    train, val = ds.train(), ds.val()
    assert isinstance(train, PickledImageSplit)
    assert len(train) == 20 and len(val) == 11
    assert train.targets == sorted(train.targets)  # sample order: by label, then archive position
    for i in range(len(train)):
        image = np.asarray(train.load_rgb(i))
        assert image.shape == (32, 32, 3) and image[0, 0, 1] == train.targets[i] and image[0, 0, 2] == 7
    # Virtual names are the archive positions: batch 1 (4 images) comes before batch 2.
    first_cat = train.indices_of_class(3)[0]
    assert train.relpath(first_cat) == "train/00003"  # batch 1: labels [0, 1, 2, 3] -> archive index 3
    assert np.asarray(train.load_rgb(first_cat))[0, 0, 0] == 10 + 3
    second_cat = train.indices_of_class(3)[1]  # batch 4 (labels [2, 3, 4, 5]): archive index 4 * 3 + 1
    assert train.relpath(second_cat) == "train/00013" and np.asarray(train.load_rgb(second_cat))[0, 0, 0] == 40 + 1
    assert val.relpath(val.indices_of_class(3)[1]) == "test/00010"
    image, label = val.with_transform(lambda im: im.size)[0]
    assert image == (32, 32) and label == 0


def test_pickled_label_order_must_match(tmp_path: Path) -> None:
    swapped = [CLASSES[1], CLASSES[0], *CLASSES[2:]]
    write_fake_cifar10(tmp_path / "cifar10" / "cifar-10-batches-py", swapped)
    with pytest.raises(ClassMismatchError, match="another order from position 0"):
        CIFAR10Dataset(str(tmp_path), classes=CLASSES).train()


def test_pickled_cifar100(tmp_path: Path) -> None:
    folder = tmp_path / "cifar100" / "cifar-100-python"
    names = [f"c{i:02d}" for i in range(100)]
    _dump(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"s{i}" for i in range(20)]})
    for split, n in (("train", 200), ("test", 100)):
        labels = [k % 100 for k in range(n)]
        _dump(folder / split, {"fine_labels": labels, "coarse_labels": [x // 5 for x in labels],
                               "data": _pixels(labels, 0), "filenames": [str(k) for k in range(n)]})
    ds = CIFAR100Dataset(str(tmp_path), classes=names)
    assert len(ds.train()) == 200 and len(ds.val()) == 100 and ds.val().indices_of_class(99) == [99]


def test_missing_cifar_mentions_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-batches-py.*FGDD_DATA_DIR|FGDD_DATA_DIR.*cifar-10-batches-py"):
        CIFAR10Dataset(str(tmp_path), classes=CLASSES).train()


def _offline(*args, **kwargs) -> None:
    raise URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(
    "make",
    [
        lambda root: CIFAR10Dataset(root, classes=CLASSES, download=True),
        lambda root: ImagenetteDataset(root, classes=["n01440764"], download=True, subdir="imagenette2-160"),
        lambda root: ImageWoofDataset(root, classes=["n02086240"], download=True, subdir="imagewoof2-320"),
    ],
)
def test_offline_download_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make) -> None:
    monkeypatch.delenv("FGDD_OFFLINE", raising=False)  # let it try: the (faked) network then fails
    monkeypatch.setattr(download_module, "_download_and_extract", _offline)
    ds = make(str(tmp_path))
    with pytest.raises(DownloadUnavailableError, match="name resolution") as info:
        ds.train()
    assert str(tmp_path) in str(info.value) and "download=false" in str(info.value)
    assert [p.name for p in tmp_path.rglob("*")] in ([], ["cifar10"])  # no partial download left behind


def test_download_moves_folder_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(url: str, download_root: Path, filename: str | None, md5: str | None) -> None:
        assert url.endswith("cifar-10-python.tar.gz")
        write_fake_cifar10(Path(download_root) / "cifar-10-batches-py")

    monkeypatch.delenv("FGDD_OFFLINE", raising=False)
    monkeypatch.setattr(download_module, "_download_and_extract", fake)
    ds = CIFAR10Dataset(str(tmp_path), classes=CLASSES, download=True)
    assert len(ds.train()) == 20
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == ["cifar-10-batches-py"]


def test_fgdd_offline_refuses_downloads_without_touching_the_network(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FGDD_OFFLINE", "1")
    monkeypatch.setattr(download_module, "_download_and_extract", lambda *a: pytest.fail("network touched"))
    with pytest.raises(DownloadUnavailableError, match="FGDD_OFFLINE=1") as info:
        CIFAR10Dataset(str(tmp_path), classes=CLASSES, download=True).train()
    assert "cifar-10-python.tar.gz" in str(info.value)


def test_imagenette_download_needs_a_published_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="imagenette2-320"):
        ImagenetteDataset(str(tmp_path), classes=["n01440764"], download=True, subdir="imagenette2-128")
