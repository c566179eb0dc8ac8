"""Tiny-ImageNet's official layout built in tmp_path: sorted-wnid labels, val annotations, boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgdd.data import TinyImageNetDataset, read_boxes
from fgdd.errors import ClassMismatchError

WNIDS = ["n02124075", "n01443537", "n04067472"]  # wnids.txt order is not sorted in the real file either


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (value, value, value)).save(path, format="JPEG")


def build_tiny(root: Path) -> Path:
    top = root / "tiny-imagenet-200"
    top.mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (top / "words.txt").write_text(
        "n01443537\tgoldfish, Carassius auratus\nn02124075\tEgyptian cat\nn04067472\treel\nn00000001\tother\n"
    )
    for wnid in WNIDS:
        lines = []
        for k in range(2):
            name = f"{wnid}_{k}.JPEG"
            _image(top / "train" / wnid / "images" / name, 10 * k)
            lines.append(f"{name}\t{k}\t{k + 1}\t{40 + k}\t{50 + k}")
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(lines) + "\n")
    annotations = []
    for k, wnid in enumerate(["n04067472", "n01443537", "n02124075", "n01443537"]):
        _image(top / "val" / "images" / f"val_{k}.JPEG", 100 + k)
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t1\t2\t3")
    (top / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return top


def test_official_layout(tmp_path: Path) -> None:
    build_tiny(tmp_path)
    ds = TinyImageNetDataset(str(tmp_path), classes=sorted(WNIDS), input_size=64, factor=1)
    train, val = ds.train(), ds.val()
    assert train.classes == sorted(WNIDS) and len(train) == 6
    assert train.relpath(0) == "train/n01443537/images/n01443537_0.JPEG"
    assert ds.class_names == ["goldfish", "Egyptian cat", "reel"]
    assert [val.relpath(i) for i in range(len(val))] == [
        "val/images/val_1.JPEG", "val/images/val_3.JPEG", "val/images/val_2.JPEG", "val/images/val_0.JPEG"
    ]
    assert val.targets == [0, 0, 1, 2]
    assert np.asarray(val.load_rgb(3))[0, 0, 0] in range(98, 103)  # val_0 is the n04067472 image (JPEG: ~100)
    boxes = ds.boxes("train")
    assert boxes[train.relpath(1)] == (1, 2, 41, 51)
    assert ds.boxes("val")["val/images/val_2.JPEG"] == (0, 1, 2, 3)


def test_classes_from_wnids_file(tmp_path: Path) -> None:
    build_tiny(tmp_path)
    # 3 wnids are not the official 200: such a class list runs only under a name of its own (test_dataset_copies)
    ds = TinyImageNetDataset(str(tmp_path), classes=None, input_size=64, factor=1, name="tiny3")
    assert ds.classes == sorted(WNIDS)  # filled at construction, sorted like ImageFolder's labels
    assert len(ds.val()) == 4


def test_config_list_checked_against_wnids(tmp_path: Path) -> None:
    build_tiny(tmp_path)
    with pytest.raises(ClassMismatchError, match="wnids.txt"):
        TinyImageNetDataset(str(tmp_path), classes=sorted(WNIDS)[:2] + ["n09999999"], input_size=64, factor=1).train()
    with pytest.raises(ClassMismatchError, match="another order from position 0"):
        TinyImageNetDataset(str(tmp_path), classes=WNIDS, input_size=64, factor=1).train()


def test_read_boxes_both_formats(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_text("a.JPEG\t1\t2\t3\t4\nb.JPEG\tn01443537\t5\t6\t7\t8\n\n")
    assert read_boxes(path) == {"a.JPEG": (1, 2, 3, 4), "b.JPEG": (5, 6, 7, 8)}


def test_class_names_read_before_any_split(tmp_path: Path) -> None:
    build_tiny(tmp_path)
    ds = TinyImageNetDataset(str(tmp_path), classes=sorted(WNIDS), input_size=64, factor=1)
    assert ds.class_names == ["goldfish", "Egyptian cat", "reel"]
    named = TinyImageNetDataset(str(tmp_path), classes=sorted(WNIDS), class_names=["a", "b", "c"], input_size=64, factor=1)
    assert named.class_names == ["a", "b", "c"] and len(named.train()) == 6 and named.class_names == ["a", "b", "c"]
