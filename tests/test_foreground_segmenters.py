"""The simple segmenters (ground truth, none, mask folder) and the teacher's class activation map."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from fgdd.data import CIFAR10Dataset, DatasetSpec, ImageFolderDataset, ShapesDataset, TinyImageNetDataset
from fgdd.errors import ConfigError, FgddError
from fgdd.foreground.base import SegmentationContext, occupancy
from fgdd.foreground.cam import CAMSegmenter, otsu_threshold
from fgdd.foreground.ground_truth import GroundTruthSegmenter, box_mask
from fgdd.foreground.mask_folder import MaskFolderSegmenter
from fgdd.foreground.none import NoForeground
from fgdd.models.checkpoint import weights_sha256
from fgdd.models.convnet import ConvNet
from fgdd.teacher import load_teacher

CPU = torch.device("cpu")
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEN = tuple(str(i) for i in range(10))
# a dataset as the CAM reads it: only its spec
SPEC = types.SimpleNamespace(spec=DatasetSpec(name="spec", classes=TEN, class_names=TEN, input_size=32,
                                              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), factor=1))


def _segment(segmenter, images, labels=None, sources=None):
    n = len(images)
    return segmenter.masks(images, labels=labels or [0] * n, prompts=["x."] * n, sources=sources or [""] * n)


def _random_images(n: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


# --- ground truth and none -------------------------------------------------------------------------------------


def test_shapes_ground_truth_equals_the_dataset_masks(tmp_path: Path) -> None:
    ds = ShapesDataset(str(tmp_path), classes=["circle", "star"], image_size=32, train_per_class=3, val_per_class=2)
    segmenter = GroundTruthSegmenter(name="ground_truth")
    segmenter.setup(SegmentationContext(observer=None, dataset=ds, device=CPU))
    for which in ("train", "val"):
        split = getattr(ds, which)()
        idx = list(range(len(split)))
        masks = _segment(segmenter, [split.load_rgb(i) for i in idx], sources=[split.relpath(i) for i in idx])
        for i, mask in zip(idx, masks):
            assert mask.dtype == bool and np.array_equal(mask, ds.mask(which, i))
    assert segmenter.cache_key()["dataset"] == "shapes"
    with pytest.raises(FgddError, match="not an image of dataset"):
        _segment(segmenter, [split.load_rgb(0)], sources=["train/circle/9999.png"])


def test_tiny_imagenet_boxes_become_filled_rectangles(tmp_path: Path) -> None:
    top = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n02124075"]
    (top / "val" / "images").mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        (top / "train" / wnid / "images").mkdir(parents=True)
        Image.new("RGB", (64, 64)).save(top / "train" / wnid / "images" / f"{wnid}_0.JPEG")
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t2\t3\t10\t20\n")
    Image.new("RGB", (64, 64)).save(top / "val" / "images" / "val_0.JPEG")
    (top / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02124075\t0\t0\t63\t70\n")  # box past the edge
    ds = TinyImageNetDataset(str(tmp_path), classes=wnids)
    segmenter = GroundTruthSegmenter()
    segmenter.setup(SegmentationContext(None, ds, CPU))
    image = Image.new("RGB", (64, 64))
    sources = ["train/n02124075/images/n02124075_0.JPEG", "val/images/val_0.JPEG"]
    train_mask, val_mask = _segment(segmenter, [image, image], sources=sources)
    assert occupancy(train_mask) == 9 * 18 / 64**2  # inclusive corners: x 2..10, y 3..20
    assert train_mask[3, 2] and train_mask[20, 10] and not train_mask[21, 10] and not train_mask[3, 11]
    assert val_mask.all()  # clipped to the image
    assert np.array_equal(box_mask((0, 0, 0, 0), 4, 3), np.eye(3, 4, dtype=bool) & (np.arange(4) == 0))


def test_ground_truth_refuses_a_dataset_without_masks(tmp_path: Path) -> None:
    ds = ImageFolderDataset(str(tmp_path), classes=["a", "b"], input_size=32, factor=1, name="mine")
    with pytest.raises(FgddError, match=r"no ground-truth foreground.*segmenter=cam.*mask_folder"):
        GroundTruthSegmenter().setup(SegmentationContext(None, ds, CPU))


def test_none_gives_empty_masks_at_each_image_size() -> None:
    images = _random_images(2, (20, 10)) + _random_images(1, (7, 9))
    segmenter = NoForeground(name="none")
    segmenter.setup(SegmentationContext(None, None, CPU))
    masks = _segment(segmenter, images)
    assert [m.shape for m in masks] == [(10, 20), (10, 20), (9, 7)]
    assert all(m.dtype == bool and occupancy(m) == 0.0 for m in masks)


# --- mask folder ------------------------------------------------------------------------------------------------


def test_mask_folder_roundtrip_resize_and_missing_file(tmp_path: Path) -> None:
    root = tmp_path / "masks"
    (root / "train" / "cat").mkdir(parents=True)
    exact = np.zeros((6, 8), dtype=np.uint8)
    exact[1:4, 2:7] = 200
    Image.fromarray(exact).save(root / "train" / "cat" / "a.png")
    half = np.zeros((3, 4), dtype=np.uint8)  # same aspect as 8x6, half the size
    half[0, 0] = 255
    half[2, 3] = 128  # just above the default threshold 127
    Image.fromarray(half).save(root / "train" / "cat" / "b.png")
    segmenter = MaskFolderSegmenter(root=str(root), name="mask_folder")
    segmenter.setup(SegmentationContext(None, None, CPU))
    images = [Image.new("RGB", (8, 6)), Image.new("RGB", (8, 6))]
    a, b = _segment(segmenter, images, sources=["train/cat/a.JPEG", "train/cat/b.jpg"])
    assert np.array_equal(a, exact > 127)
    expected_b = np.zeros((6, 8), dtype=bool)
    expected_b[0:2, 0:2] = True  # nearest neighbour: each mask pixel becomes a 2x2 block
    expected_b[4:6, 6:8] = True
    assert np.array_equal(b, expected_b)

    key = segmenter.cache_key()
    assert key["root"] == str(root.resolve()) and key["folder"]["files"] == 2
    Image.fromarray(half).save(root / "train" / "cat" / "c.png")
    segmenter.setup(SegmentationContext(None, None, CPU))
    assert segmenter.cache_key() != key  # a new mask changes the key

    with pytest.raises(FgddError, match=r"no mask for image train/cat/zzz\.jpg: expected .*train/cat/zzz\.png"):
        _segment(segmenter, [images[0]], sources=["train/cat/zzz.jpg"])
    with pytest.raises(FgddError, match=r"b\.png is 4x3 but its image is 8x8: the aspect ratios differ"):
        _segment(segmenter, [Image.new("RGB", (8, 8))], sources=["train/cat/b.jpg"])
    with pytest.raises(FgddError, match="does not exist"):
        MaskFolderSegmenter(root=str(tmp_path / "nowhere")).setup(SegmentationContext(None, None, CPU))


# --- CAM ----------------------------------------------------------------------------------------------------------


def _conv_cam(depth: int = 3) -> tuple[ConvNet, CAMSegmenter]:
    torch.manual_seed(0)
    model = ConvNet(num_classes=10, input_size=32, depth=depth).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the test covers eval-mode features
        for norm in model.layers["norm"]:
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
    segmenter = CAMSegmenter(threshold=0.5, normalize="minmax")  # min-max: the map's max is in, its min out
    segmenter.setup(SegmentationContext(model, SPEC, CPU))
    return model, segmenter


def test_convnet_cam_is_the_exact_logit_decomposition() -> None:
    model, segmenter = _conv_cam()
    images = _random_images(5, (32, 32)) + _random_images(1, (40, 24), seed=1)
    labels = [0, 3, 7, 9, 2, 5]
    cams, logits = segmenter.cams(images, labels)
    assert cams.shape == (6, 4, 4)  # 32 px / 2^3
    rows = torch.arange(6)
    assert torch.allclose(cams.sum((1, 2)) + model.classifier.bias[labels], logits[rows, labels], atol=1e-4)
    # Position by position, from the flattened features: index c*h*w + y*w + x of the Linear's input.
    x = segmenter._preprocess(images[:1])
    with torch.no_grad():
        flat = model.features(x)[0]  # (c*h*w,)
    contribution = (model.classifier.weight[labels[0]] * flat).view(128, 4, 4).sum(0)
    assert torch.allclose(cams[0], contribution, atol=1e-5)
    # ... and not the transposed order (a wrong flatten order would still sum to the logit)
    assert not torch.allclose(cams[0], contribution.T, atol=1e-3)


def test_cam_masks_follow_image_size_threshold_and_class() -> None:
    model, segmenter = _conv_cam()
    images = _random_images(3, (32, 32)) + _random_images(1, (50, 30), seed=2)
    masks = _segment(segmenter, images, labels=[1, 1, 4, 8])
    assert [m.shape for m in masks] == [(32, 32)] * 3 + [(30, 50)]
    assert all(m.dtype == bool and 0.0 < occupancy(m) < 1.0 for m in masks)
    low = CAMSegmenter(threshold=0.2, normalize="minmax")
    low.setup(SegmentationContext(model, SPEC, CPU))
    assert all((a >= b).all() for a, b in zip(_segment(low, images, labels=[1, 1, 4, 8]), masks))  # nested
    otsu = CAMSegmenter(threshold="otsu", normalize="max", batch_size=2)
    otsu.setup(SegmentationContext(model, SPEC, CPU))
    assert [m.shape for m in _segment(otsu, images, labels=[1, 1, 4, 8])] == [m.shape for m in masks]
    with pytest.raises(FgddError, match="outside the teacher's 10 classes"):
        _segment(segmenter, images[:1], labels=[10])


def test_max_normalisation_keeps_the_sign_of_the_evidence() -> None:
    segmenter = CAMSegmenter(threshold=0.4, normalize="max")
    cam = torch.tensor([[1.0, 0.5], [0.3, -2.0]])  # / max 1: 1, 0.5 in; 0.3, -2 out
    assert segmenter._mask(cam, 2, 2).tolist() == [[True, True], [False, False]]
    assert not segmenter._mask(-cam.abs(), 4, 4).any()  # no positive evidence: no foreground
    assert segmenter._mask(torch.full((2, 2), 3.0), 4, 6).all()  # evidence everywhere: all foreground
    minmax = CAMSegmenter(threshold=0.4, normalize="minmax")
    assert not minmax._mask(torch.full((2, 2), 3.0), 4, 6).any()  # a flat map has no location


def test_otsu_splits_a_bimodal_histogram() -> None:
    values = torch.cat([torch.full((100,), 0.1), torch.full((50,), 0.8)])
    assert 0.1 < otsu_threshold(values) < 0.8


def test_cam_on_torchvision_resnet18_shape_range_and_decomposition() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    segmenter = CAMSegmenter(threshold=0.5, normalize="minmax")
    segmenter.setup(SegmentationContext(model, SPEC, CPU))
    images = _random_images(2, (32, 32)) + _random_images(1, (45, 33), seed=3)
    cams, logits = segmenter.cams(images, [2, 6, 9])
    assert cams.shape == (3, 1, 1)  # 32 px / stride 32
    assert torch.allclose(cams.sum((1, 2)) + model.fc.bias[[2, 6, 9]], logits[torch.arange(3), [2, 6, 9]], atol=1e-4)
    big = types.SimpleNamespace(spec=dataclasses.replace(SPEC.spec, input_size=96))
    segmenter.setup(SegmentationContext(model, big, CPU))
    cams, _ = segmenter.cams(images, [2, 6, 9])
    assert cams.shape == (3, 3, 3)
    masks = _segment(segmenter, images, labels=[2, 6, 9])
    assert [m.shape for m in masks] == [(32, 32), (32, 32), (33, 45)]
    assert all(0.0 < occupancy(m) < 1.0 for m in masks)


def test_cam_refuses_unsupported_observers_and_bad_settings() -> None:
    with pytest.raises(ConfigError, match=r"cannot compute a class activation map for Sequential: supported .*ConvNet"):
        CAMSegmenter().setup(SegmentationContext(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)), SPEC, CPU))
    with pytest.raises(ConfigError, match="needs the run's teacher"):
        CAMSegmenter().setup(SegmentationContext(None, SPEC, CPU))
    with pytest.raises(ConfigError, match="threshold"):
        CAMSegmenter(threshold=1.5)
    with pytest.raises(FgddError, match="setup"):
        CAMSegmenter().cache_key()


def test_cam_cache_key_tracks_the_teacher_weights() -> None:
    model, segmenter = _conv_cam()
    key = segmenter.cache_key()
    assert key["name"] == "cam" and key["threshold"] == 0.5 and len(key["observer_sha256"]) == 64
    _, same = _conv_cam()
    assert same.cache_key() == key  # same seed, same weights
    with torch.no_grad():
        model.classifier.weight[0, 0] += 1e-3
    assert weights_sha256(model, layout="state_dict") != key["observer_sha256"]


def test_cam_with_the_reference_teacher_on_real_cifar_images(
    shared_data: Callable[[str], Path], shared_teachers: Path
) -> None:
    folder = shared_data("cifar10-jpeg")
    ds = CIFAR10Dataset(str(folder.parent), classes=CIFAR10, subdir=folder.name)
    teacher, _ = load_teacher(shared_teachers / "cifar10_conv3.pth", None, ds.spec, CPU)
    paths = [p for c in ("horse", "ship") for p in sorted((folder / "test" / c).glob("*.jpg"))[:8]]
    images = [Image.open(p).convert("RGB") for p in paths]
    labels = [CIFAR10.index(p.parent.name) for p in paths]
    segmenter = CAMSegmenter()
    segmenter.setup(SegmentationContext(teacher, ds, CPU))
    sources = [p.relative_to(folder).as_posix() for p in paths]
    masks = segmenter.masks(images, labels=labels, prompts=[p.parent.name + "." for p in paths], sources=sources)
    assert [m.shape for m in masks] == [(32, 32)] * len(paths)
    occupancies = np.array([occupancy(m) for m in masks])
    assert all(m.dtype == bool for m in masks) and ((occupancies > 0) & (occupancies < 1)).mean() >= 0.75
    _, logits = segmenter.cams(images, labels)
    assert (logits.argmax(1) == torch.as_tensor(labels)).float().mean() >= 0.75  # the teacher sees these classes
