from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from fgdd.data.transforms import eval_transform
from fgdd.evaluation.augment import StudentTrainTransform, cutmix, strip_pixel_order, strip_pixel_orders
from fgdd.utils.boxes import resized_crop_box

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _tile_image() -> torch.Tensor:
    # 3 x 4 x 4 uint8 image whose 2x2 tiles are constant 0 (top-left), 1 (top-right), 2 (bottom-left), 3 (bottom-right)
    tiles = torch.tensor([[0, 1], [2, 3]], dtype=torch.uint8)
    return tiles.repeat_interleave(2, 0).repeat_interleave(2, 1)[None].expand(3, 4, 4).contiguous()


def _strips_only(transform: StudentTrainTransform, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # the transform's own draw and apply with the crop set to the whole (square) image and no flip: what is left is
    # its strip shuffle, as the pixel values 0..255 (mean 0, std 1; a same-size resize is the identity)
    params = transform.draw(image.shape[1], image.shape[2], g)
    params.update(box=torch.tensor([0, 0, image.shape[1], image.shape[2]]), flip=torch.tensor(False))
    return (transform.apply(image, params) * 255).round()


def test_strip_shuffle_moves_whole_tiles_as_row_and_column_swaps() -> None:
    transform = StudentTrainTransform(4, 2, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    # RDED permutes column strips and row strips: 4 reachable arrangements for factor 2
    allowed = {(0.0, 1.0, 2.0, 3.0), (1.0, 0.0, 3.0, 2.0), (2.0, 3.0, 0.0, 1.0), (3.0, 2.0, 1.0, 0.0)}
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        out = _strips_only(transform, _tile_image(), g)[0]  # (4, 4)
        blocks = out.unfold(0, 2, 2).unfold(1, 2, 2)  # (2, 2, 2, 2): tile grid x tile pixels
        # every tile is still constant, i.e. whole tiles moved
        assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))
        arrangement = tuple(blocks[..., 0, 0].flatten().tolist())
        assert sorted(arrangement) == [0.0, 1.0, 2.0, 3.0]
        seen.add(arrangement)
    assert seen == allowed


def test_strip_shuffle_keeps_odd_sizes_and_pixels() -> None:
    # 7 px in 2 strips: the last strip keeps the remainder (RDED's loop drops it), so no pixel is lost or repeated
    image = torch.randperm(3 * 7 * 7).remainder(256).to(torch.uint8).view(3, 7, 7)
    transform = StudentTrainTransform(7, 2, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        params = transform.draw(7, 7, g)
        assert sorted(params["rows"].tolist()) == sorted(params["cols"].tolist()) == [0, 1]  # strip orders
        assert sorted(strip_pixel_order(7, 2, params["rows"]).tolist()) == list(range(7))
        out = _strips_only(transform, image, g)
        assert out.shape == image.shape
        assert torch.equal(out.flatten().sort().values, image.float().flatten().sort().values)


@pytest.mark.parametrize("size,factor", [(32, 2), (33, 2), (35, 3), (16, 1)])
def test_strip_pixel_order_lays_out_whole_strips(size: int, factor: int) -> None:
    # strip k covers [k*s, (k+1)*s), s = size // factor, the last one also the remainder; every pixel once
    step = size // factor
    orders = torch.stack([torch.randperm(factor, generator=torch.Generator().manual_seed(s)) for s in range(6)])
    for order, pixels in zip(orders, strip_pixel_orders(size, factor, orders)):
        assert torch.equal(pixels, strip_pixel_order(size, factor, order))
        assert sorted(pixels.tolist()) == list(range(size))
        lengths = [step + (size - factor * step if k == factor - 1 else 0) for k in order.tolist()]
        for k, strip in zip(order.tolist(), pixels.split(lengths)):
            assert strip.tolist() == list(range(k * step, k * step + len(strip)))


def test_cutmix_box_area_matches_lambda() -> None:
    g = torch.Generator().manual_seed(0)
    n, h, w = 6, 20, 30
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).contiguous()
    for _ in range(30):
        mixed, perm, lam = cutmix(images, g)
        assert mixed.shape == images.shape and sorted(perm.tolist()) == list(range(n))
        assert 0.0 <= lam <= 1.0
        for i in range(n):
            pasted = mixed[i, 0] == perm[i].float()
            if perm[i] != i:
                # the pasted region is exactly the box: its area fraction is 1 - lam
                assert abs(pasted.sum().item() / (h * w) - (1.0 - lam)) < 1e-9
                assert torch.all(mixed[i, 0][~pasted] == i)
    assert torch.equal(images[:, 0, 0, 0], torch.arange(n, dtype=torch.float32))  # input untouched


def test_cutmix_is_seeded() -> None:
    images = torch.rand(5, 3, 16, 16)
    a = cutmix(images, torch.Generator().manual_seed(1))
    b = cutmix(images, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_resized_crop_box_respects_scale() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        i, j, h, w = resized_crop_box(64, 64, (0.25, 1.0), (3 / 4, 4 / 3), g, torch.float64)
        assert 0 <= i and 0 <= j and i + h <= 64 and j + w <= 64
        assert 0.2 <= h * w / 64**2 <= 1.0
    # factor 1 (scale (1, 1)): no crop with a non-square aspect fits, so the whole image is kept, as in RDED
    assert resized_crop_box(32, 32, (1.0, 1.0), (3 / 4, 4 / 3), g, torch.float64) == (0, 0, 32, 32)


def test_train_transform_shape_and_seed() -> None:
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    transform = StudentTrainTransform(16, 2, MEAN, STD)
    a = transform(image, torch.Generator().manual_seed(5))
    b = transform(image, torch.Generator().manual_seed(5))
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_train_transform_factor1_only_flips() -> None:
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    transform = StudentTrainTransform(8, 1, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    plain = image.float() / 255
    for seed in range(10):
        out = transform(image, torch.Generator().manual_seed(seed))
        assert torch.allclose(out, plain) or torch.allclose(out, plain.flip(-1))


def test_eval_transform_uses_rded_resize() -> None:
    # RDED resizes to input // 7 * 8: a 32 px image is kept whole (no border cropped)
    image = Image.new("RGB", (32, 32))
    image.putpixel((0, 0), (255, 0, 0))
    out = eval_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(image)
    assert out.shape == (3, 32, 32) and out[0, 0, 0] == 1.0
    assert eval_transform(128, MEAN, STD)(Image.new("RGB", (200, 160))).shape == (3, 128, 128)


def test_batch_augmentation_equals_per_image_augmentation() -> None:
    # the device path: choices drawn per sample exactly as the per-image path draws them, applied to a batch
    for factor, size in [(1, 16), (2, 16), (2, 17), (3, 30)]:
        transform = StudentTrainTransform(size, factor, MEAN, STD)
        pixels = torch.randint(0, 256, (12, 3, size, size), dtype=torch.uint8)
        index = torch.tensor([3, 0, 7, 7, 11, 5, 2, 9])
        seeds = list(range(100, 108))
        draws = [transform.draw(size, size, torch.Generator().manual_seed(s)) for s in seeds]
        params = {key: torch.stack([d[key] for d in draws]) for key in draws[0]}
        batch = transform.apply_batch(pixels, index, params)
        single = torch.stack([transform(pixels[i], torch.Generator().manual_seed(s)) for i, s in zip(index, seeds)])
        assert torch.equal(batch, single)


def test_stored_soft_labels_replay_and_spread_the_rest() -> None:
    from fgdd.errors import FgddError
    from fgdd.evaluation.soft_labels import SoftLabelStore

    store = SoftLabelStore(rounds=2, topk=2, temperature=1.0)
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.0]])
    labels, perm = torch.tensor([0, 2]), torch.tensor([1, 0])
    targets = store.record(0, 0, labels, perm, (1, 3, 0, 2), logits)
    probs = torch.softmax(logits, 1)
    assert torch.allclose(targets.sum(1), torch.ones(2))
    top = probs.topk(2, 1)
    assert torch.allclose(targets.gather(1, top.indices), top.values, atol=1e-3)  # fp16
    rest = (1 - top.values.half().float().sum(1)) / 2
    assert torch.allclose(targets[0, [2, 3]], rest[0].expand(2))
    assert store.recording(1) and not store.recording(2)
    replay_perm, box, replayed = store.replay(2, 0, labels)  # epoch 2 repeats round 0
    assert torch.equal(replay_perm, perm) and box == (1, 3, 0, 2) and torch.equal(replayed, targets)
    with pytest.raises(FgddError, match="not the batch"):
        store.replay(4, 0, torch.tensor([1, 2]))
    assert store.nbytes == 2 * 2 + 2 * 2 + 16 + 2 * 2 * 2 + 2 * 2 * 2


# ----------------------------------------------------------------------------------------------------------------
# the batched pipeline (BatchAugment, BatchedEpochs)


def _per_image_params(params: dict, k: int) -> dict:
    # sample k of BatchAugment's draws: the same keys and meanings as the per-image transform's (strip orders)
    return {key: params[key][k] for key in ("rows", "cols", "box", "flip")}


@pytest.mark.parametrize("input_size, factor, source", [(32, 1, 32), (64, 2, 64), (16, 2, 17), (32, 2, 40), (12, 3, 13)])
def test_batched_augmentation_gives_the_per_image_pixels(input_size: int, factor: int, source: int) -> None:
    # strip shuffle, crop, antialiased resize (up and down: 40 -> 32, 13 -> 12), flip and normalisation folded into
    # two interpolation matrices give torchvision's per-image result up to float rounding
    from fgdd.evaluation.augment import BatchAugment

    augment = BatchAugment(input_size, factor, MEAN, STD)
    per_image = StudentTrainTransform(input_size, factor, MEAN, STD)
    pixels = torch.randint(0, 256, (9, 3, source, source), dtype=torch.uint8)
    index = torch.tensor([4, 0, 8, 8, 1, 2, 7, 3, 5, 6, 0, 1])
    params = augment.draw(len(index), source, source, torch.Generator().manual_seed(0))
    batch = augment.apply_batch(pixels, index, params)
    assert batch.shape == (len(index), 3, input_size, input_size) and batch.dtype == torch.float32
    for k, i in enumerate(index.tolist()):
        expected = per_image.apply(pixels[i], _per_image_params(params, k))
        torch.testing.assert_close(batch[k], expected, rtol=0, atol=1e-5)


def test_batched_draws_follow_torchvisions_distributions() -> None:
    # the vectorised draws against the per-sample ones (torchvision's RandomResizedCrop rule), over 4,000 samples each
    from fgdd.evaluation.augment import CROP_RATIO, BatchAugment

    for size, factor in [(64, 2), (32, 1), (60, 3)]:
        n = 4000
        params = BatchAugment(size, factor, MEAN, STD).draw(n, size, size, torch.Generator().manual_seed(1))
        g = torch.Generator().manual_seed(2)
        single = torch.tensor([resized_crop_box(size, size, (1.0 / factor, 1.0), CROP_RATIO, g, torch.float64)
                               for _ in range(n)])
        for boxes in (params["box"], single):
            assert bool(((boxes[:, 0] + boxes[:, 2] <= size) & (boxes[:, 1] + boxes[:, 3] <= size)).all())
            assert bool((boxes >= 0).all())
        for column in range(4):  # top, left, height, width: the same means and spreads
            a, b = params["box"][:, column].double(), single[:, column].double()
            assert abs(a.mean() - b.mean()) < 0.05 * size, (size, column)
            assert abs(a.std() - b.std()) < 0.05 * size, (size, column)
        area = (params["box"][:, 2] * params["box"][:, 3]).double() / size**2
        assert area.min() >= 1.0 / factor - 0.05  # RandomResizedCrop(scale=(1/factor, 1))
        assert 0.47 < params["flip"].double().mean() < 0.53
        if factor == 1:  # no non-square crop fits the whole area: the whole image, as torchvision and RDED
            assert bool((params["box"] == torch.tensor([0, 0, size, size])).all())
        else:  # every strip order is drawn, about equally often
            orders = torch.unique(params["rows"], dim=0, return_counts=True)[1]
            assert len(orders) == math.factorial(factor) and orders.min() > 0.8 * n / len(orders)


def test_batched_epochs_cover_the_set_once_and_replay_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    import fgdd.training.batches as batches_module
    from fgdd.evaluation.augment import BatchAugment

    labels = torch.arange(23) % 3
    augment = BatchAugment(16, 2, MEAN, STD)

    def epochs(rounds=None, count=3):
        plan = batches_module.BatchedEpochs(labels, 16, 16, augment, batch_size=5, seed=0, stream="student-epoch",
                                            rounds=rounds)
        return [list(plan) for _ in range(count)], len(plan)

    runs, length = epochs()
    assert length == 5 and all(len(batches) == 5 for batches in runs)
    for batches in runs:
        index = torch.cat([params["index"] for params, _ in batches])
        assert sorted(index.tolist()) == list(range(23))  # each image once an epoch
        assert all(torch.equal(y, labels[p["index"]]) for p, y in batches)
    assert not torch.equal(runs[0][0][0]["index"], runs[1][0][0]["index"])  # a new order every epoch
    again, _ = epochs()
    assert all(torch.equal(a[0][key], b[0][key]) for ea, eb in zip(runs, again) for a, b in zip(ea, eb)
               for key in a[0])  # same seed, same draws
    replayed, _ = epochs(rounds=2, count=4)  # epoch 2 repeats epoch 0, epoch 3 epoch 1
    for e in (2, 3):
        assert all(torch.equal(a[0][k], b[0][k]) for a, b in zip(replayed[e], replayed[e - 2]) for k in a[0])

    # DDP: every rank runs the same number of steps and together they cover the epoch (padded like
    # DistributedSampler)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(batches_module, "rank_and_world", lambda rank=rank: (rank, 3))
        plan = batches_module.BatchedEpochs(labels, 16, 16, augment, batch_size=5, seed=0, stream="student-epoch")
        batches = list(plan)
        assert len(batches) == len(plan) == 2
        seen += torch.cat([p["index"] for p, _ in batches]).tolist()
    assert set(seen) == set(range(23)) and len(seen) == 24
