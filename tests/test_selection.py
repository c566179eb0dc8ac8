"""RDED's algorithm pinned on hand-checkable inputs: which crop wins, which patches are kept, where each lands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fgdd.data.spec import DatasetSpec
from fgdd.errors import ClassMismatchError, FgddError
from fgdd.selection import DistilledSet, RandomRealSelector, RDEDSelector, write_distilled_set
from fgdd.selection.candidates import crop_boxes, crop_patches, crop_to_patch
from fgdd.selection.scoring import pad_to_input, score_patches
from fgdd.selection.stitch import mosaic_position, stitch

MEAN = (0.0, 0.0, 0.0)
STD = (1.0, 1.0, 1.0)


def memory_spec(classes: list[str], input_size: int = 32, factor: int = 1) -> DatasetSpec:
    """The spec of an in-memory split: 32 px, identity normalisation (the observers read raw [0, 1] pixels)."""
    return DatasetSpec(name="memory", classes=tuple(classes), class_names=tuple(classes), input_size=input_size,
                       mean=MEAN, std=STD, factor=factor)


class MemorySplit:
    """An in-memory ImageSource: images[label] is a list of PIL images."""

    def __init__(self, images: dict[int, list[Image.Image]], classes: list[str]) -> None:
        self.classes = classes
        self.root = "memory"
        self.items = [(img, label) for label in sorted(images) for img in images[label]]
        self.targets = [label for _, label in self.items]

    def load_rgb(self, index: int) -> Image.Image:
        return self.items[index][0]

    def relpath(self, index: int) -> str:
        return f"{self.classes[self.items[index][1]]}/{index:03d}.png"

    def indices_of_class(self, label: int) -> list[int]:
        return [i for i, (_, y) in enumerate(self.items) if y == label]


class BrightnessObserver(nn.Module):
    """Logit of class c = brightness * (c + 1) summed over non-padded pixels: brighter crops score lower CE for
    the highest class and higher CE for class 0, which makes the winning crop computable by hand."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("gain", torch.arange(num_classes, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, c, h, w) -> (n, classes)
        return x.mean(dim=(1, 2, 3))[:, None] * self.gain[None, :] * 50


def gradient_image(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, size=(size, size, 1)) * np.linspace(0, 1, size)[None, :, None]
    return Image.fromarray(np.repeat(base, 3, axis=2).astype(np.uint8))


def constant_patches(n: int, size: int = 2) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()


def test_mosaic_positions_factor_2() -> None:
    # ipc 2, factor 2: image 0 gets ranks 0, 2, 4, 6; image 1 gets ranks 1, 3, 5, 7 (method.md)
    assert [mosaic_position(r, 2, 2) for r in range(8)] == [
        (0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (1, 1, 0), (0, 1, 1), (1, 1, 1)
    ]
    with pytest.raises(ValueError):
        mosaic_position(8, 2, 2)


def test_stitch_places_each_rank_in_its_cell() -> None:
    mosaics = stitch(constant_patches(8), ipc=2, factor=2)  # (2, 3, 4, 4)
    assert mosaics.shape == (2, 3, 4, 4)
    cell_values = mosaics[:, 0, ::2, ::2]  # one pixel per cell: (image, row, col)
    assert cell_values[0].tolist() == [[0, 2], [4, 6]]
    assert cell_values[1].tolist() == [[1, 3], [5, 7]]
    for rank in range(8):  # every pixel of a cell is its patch
        image, row, col = mosaic_position(rank, 2, 2)
        assert torch.all(mosaics[image, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] == rank)


def test_stitch_factor_1_is_identity() -> None:
    patches = constant_patches(3, size=4)
    assert torch.equal(stitch(patches, ipc=3, factor=1), patches)
    with pytest.raises(ValueError):
        stitch(patches, ipc=2, factor=1)


def test_pad_to_input_centres_patch_on_zeros() -> None:
    padded = pad_to_input(torch.ones(1, 3, 4, 4), 8)
    assert padded.shape == (1, 3, 8, 8)
    assert padded.sum() == 3 * 16
    assert torch.all(padded[:, :, 2:6, 2:6] == 1)


def test_scores_are_true_class_cross_entropy() -> None:
    observer = BrightnessObserver(2)
    patches = torch.stack([torch.full((3, 2, 2), 0.2), torch.full((3, 2, 2), 0.8)])
    scores = score_patches(observer, patches, torch.tensor([1, 1]), input_size=4, mean=MEAN, std=STD,
                           device=torch.device("cpu"))
    # padded mean = value * 4 / 16; logits (0, 50 * mean)
    expected = [float(torch.nn.functional.softplus(torch.tensor(-50 * v / 4))) for v in (0.2, 0.8)]
    assert scores.tolist() == pytest.approx(expected, rel=1e-3)
    assert scores[1] < scores[0]  # the brighter patch is the more informative one for class 1


def test_best_crop_is_the_lowest_loss_candidate() -> None:
    image = gradient_image(32, seed=1)
    selector = RDEDSelector(factor=2, num_candidates=5, mipc=10)
    [patch] = selector.best_crops([("img.png", image)], 1, BrightnessObserver(2), seed=3, patch_size=16,
                                  input_size=32, mean=MEAN, std=STD, device=torch.device("cpu"))
    boxes = crop_boxes(image.size, 5, 3, "img.png")
    brightness = [float(crop_to_patch(image, box, 16).mean()) for box in boxes]
    assert len(set(brightness)) == 5  # the candidates differ, so the winner is meaningful
    assert patch.box == boxes[int(np.argmax(brightness))]  # brightest crop = lowest CE for class 1
    assert torch.equal(patch.pixels, crop_to_patch(image, patch.box, 16))


def test_crop_boxes_are_seeded_per_image() -> None:
    a = crop_boxes((64, 48), 5, 0, "x.png")
    assert a == crop_boxes((64, 48), 5, 0, "x.png")
    assert a != crop_boxes((64, 48), 5, 1, "x.png")
    assert a != crop_boxes((64, 48), 5, 0, "y.png")
    for top, left, h, w in a:
        assert 0 <= top and top + h <= 48 and 0 <= left and left + w <= 64


def make_split(per_class: int = 6, size: int = 32) -> MemorySplit:
    images = {label: [gradient_image(size, seed=100 * label + i) for i in range(per_class)] for label in range(2)}
    return MemorySplit(images, ["a", "b"])


@pytest.mark.parametrize("size", [(64, 40), (40, 64), (200, 12), (32, 32)])
def test_candidate_boxes_are_square_by_default(size) -> None:
    # (200, 12): no square of at least 8 % of the area fits, so torchvision's fallback (the central box) is taken
    boxes = [box for seed in range(20) for box in crop_boxes(size, 5, seed, "x.png")]
    width, height = size
    for top, left, h, w in boxes:
        assert h == w and 0 <= top and top + h <= height and 0 <= left and left + w <= width
    if min(size) >= 32:
        assert len(set(boxes)) > 50  # the sizes and places still vary
    else:
        assert set(boxes) == {(0, 94, 12, 12)}  # the centred square of the image's height


def test_rded_selector_and_configs_draw_square_candidates() -> None:
    from hydra import compose, initialize_config_dir

    from fgdd.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for name in ("rded", "fgdd"):  # as composed: fgdd takes RDED's settings through its defaults list
            assert list(compose("run", overrides=[f"selector={name}"]).selector.crop_ratio) == [1.0, 1.0]
    drawn: list = []

    class Recording(RDEDSelector):
        def best_crops(self, images, label, observer, **scoring):
            drawn.extend(box for source, img in images for box in crop_boxes(img.size, self.num_candidates,
                                                                              scoring["seed"], source, self.crop_scale,
                                                                              self.crop_ratio))
            return super().best_crops(images, label, observer, **scoring)

    wide = MemorySplit({label: [gradient_image(48, seed=i).resize((72, 48)) for i in range(6)] for label in (0, 1)},
                       ["a", "b"])
    selection = Recording(factor=2, num_candidates=3, mipc=6).select(
        wide, BrightnessObserver(2), ipc=1, seed=0, spec=memory_spec(wide.classes), device=torch.device("cpu"))
    assert len(drawn) == 2 * 6 * 3 and all(h == w for _, _, h, w in drawn)
    assert all(p.box[2] == p.box[3] for patches in selection.values() for p in patches)


def test_non_square_candidates_remain_a_setting() -> None:
    boxes = crop_boxes((64, 48), 40, 0, "x.png", ratio=(3 / 4, 4 / 3))
    assert any(h != w for _, _, h, w in boxes)
    selector = RDEDSelector(factor=1, crop_ratio=[0.75, 4 / 3])
    assert selector.crop_ratio == (0.75, 4 / 3)
    with pytest.raises(FgddError, match="crop_ratio"):
        RDEDSelector(factor=1, crop_ratio=[1.5, 1.0])


def test_tensor_crops_are_rdeds_float_resize_and_pil_crops_are_rounded() -> None:
    from torchvision.transforms import functional as TF

    image = gradient_image(40, seed=5).resize((56, 40))
    box = (3, 7, 30, 30)
    rded_way = TF.resized_crop(TF.to_tensor(image), *box, [16, 16], antialias=True)  # ToTensor, then the crop
    assert torch.equal(crop_to_patch(image, box, 16), rded_way)
    pil = crop_to_patch(image, box, 16, crop_from="pil")
    assert torch.equal(pil * 255, (pil * 255).round())  # 8-bit values
    assert float((pil - rded_way).abs().max()) <= 1.5 / 255  # the two differ by rounding only
    batch = crop_patches(image, [box, (0, 0, 40, 40)], 16)
    assert batch.shape == (2, 3, 16, 16) and torch.equal(batch[0], rded_way)
    with pytest.raises(FgddError, match="crop_from"):
        RDEDSelector(factor=1, crop_from="cv2")


def test_rded_keeps_the_top_ipc_factor_squared_per_class_ranked() -> None:
    split = make_split(per_class=6)
    selector = RDEDSelector(factor=2, num_candidates=3, mipc=6)
    selection = selector.select(split, BrightnessObserver(2), ipc=1, seed=0, spec=memory_spec(split.classes),
                                device=torch.device("cpu"))
    for label in (0, 1):
        kept = selection[label]
        assert len(kept) == 4  # ipc * factor^2
        scores = [p.score for p in kept]
        assert scores == sorted(scores)
        everything = selector.best_crops([(split.relpath(i), split.load_rgb(i)) for i in split.indices_of_class(label)],
                                         label, BrightnessObserver(2), seed=0, patch_size=16, input_size=32,
                                         mean=MEAN, std=STD, device=torch.device("cpu"))
        assert scores == sorted(p.score for p in everything)[:4]  # the 4 best of the 6 images' best crops
        assert len({p.source for p in kept}) == 4  # one patch per source image


def test_rded_refuses_more_patches_than_images() -> None:
    with pytest.raises(FgddError, match="has 6 usable images but"):
        RDEDSelector(factor=2, num_candidates=2, mipc=300).select(
            make_split(6), BrightnessObserver(2), ipc=2, seed=0, spec=memory_spec(["a", "b"]),
            device=torch.device("cpu"))


def select_and_write(tmp_path, seed: int, name: str):
    split = make_split()
    selection = RDEDSelector(factor=2, num_candidates=3, mipc=5).select(
        split, BrightnessObserver(2), ipc=1, seed=seed, spec=memory_spec(split.classes), device=torch.device("cpu"))
    return write_distilled_set(tmp_path / name, selection, split.classes, ipc=1, factor=2)


def test_same_seed_same_bytes_different_seed_different_manifest(tmp_path) -> None:
    a = select_and_write(tmp_path, 0, "a")
    b = select_and_write(tmp_path, 0, "b")
    c = select_and_write(tmp_path, 1, "c")
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    assert (a / "a" / "0000.jpg").read_bytes() == (b / "a" / "0000.jpg").read_bytes()
    assert (a / "manifest.jsonl").read_bytes() != (c / "manifest.jsonl").read_bytes()


def test_written_set_loads_and_describes_every_patch(tmp_path) -> None:
    root = select_and_write(tmp_path, 0, "set")
    loaded = DistilledSet(root, classes=["a", "b"])
    assert len(loaded) == 2 and loaded.factor == 2
    image, label = loaded[1]
    assert image.size == (32, 32) and label == 1
    records = loaded.manifest()
    assert len(records) == 8
    first = records[0]
    assert set(first) >= {"class", "source", "box", "score", "cell", "file", "rank", "path"}
    assert json.loads((root / "distilled.json").read_text())["ipc"] == 1


def test_distilled_set_class_order_is_checked(tmp_path) -> None:
    root = select_and_write(tmp_path, 0, "set")
    with pytest.raises(ClassMismatchError, match="expected"):
        DistilledSet(root, classes=["b", "a"])


def test_existing_distilled_set_is_never_overwritten(tmp_path) -> None:
    root = select_and_write(tmp_path, 0, "set")
    before = (root / "manifest.jsonl").read_bytes()
    with pytest.raises(FgddError, match="never overwrites"):
        select_and_write(tmp_path, 1, "set")
    assert (root / "manifest.jsonl").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no staging folder left behind


def test_random_real_takes_whole_images_resized() -> None:
    split = make_split(per_class=6, size=40)
    selection = RandomRealSelector().select(split, None, ipc=3, seed=0, spec=memory_spec(split.classes),
                                            device=torch.device("cpu"))
    for label, patches in selection.items():
        assert len(patches) == 3
        assert all(p.path == "resize" and p.box == (0, 0, 40, 40) and p.pixels.shape == (3, 32, 32) for p in patches)
        assert len({p.source for p in patches}) == 3


def test_channels_last_scoring_gives_the_same_scores() -> None:
    from fgdd.models.convnet import ConvNet

    torch.manual_seed(0)
    observer = ConvNet(3, 32, depth=3, width=16).eval()
    patches = torch.rand(12, 3, 16, 16)
    labels = torch.arange(12) % 3
    kwargs = dict(input_size=32, mean=MEAN, std=STD, device=torch.device("cpu"), batch_size=5)
    plain = score_patches(observer, patches, labels, **kwargs)
    nhwc = score_patches(observer, patches, labels, channels_last=True, **kwargs)
    torch.testing.assert_close(nhwc, plain, rtol=1e-5, atol=1e-6)
    assert next(observer.parameters()).is_contiguous()  # the observer itself is left as it was
