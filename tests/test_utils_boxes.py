"""The one crop-box sampler (fgdd.utils.boxes): torchvision's RandomResizedCrop.get_params, draw for draw, from an
explicit generator."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from fgdd.evaluation.augment import CROP_RATIO, StudentTrainTransform
from fgdd.selection.candidates import crop_boxes
from fgdd.utils.boxes import central_box, resized_crop_box
from fgdd.utils.seeding import derive_seed


@pytest.mark.parametrize("width, height, scale, ratio", [
    (32, 32, (0.08, 1.0), (1.0, 1.0)),  # RDED's square candidates
    (160, 120, (0.5, 1.0), (3 / 4, 4 / 3)),
    (97, 211, (0.08, 1.0), (0.6, 1.7)),  # tall image, wide ratios: central fallbacks too
])
def test_float32_boxes_are_torchvisions_under_the_same_seed(width, height, scale, ratio) -> None:
    probe = Image.new("L", (width, height))
    for seed in range(40):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            expected = [tuple(RandomResizedCrop.get_params(probe, list(scale), list(ratio))) for _ in range(6)]
        g = torch.Generator().manual_seed(seed)
        assert [resized_crop_box(height, width, scale, ratio, g) for _ in range(6)] == expected


def test_candidate_boxes_are_torchvisions_seeded_by_run_and_image() -> None:
    # what the candidates drew before they had a generator: get_params on the seeded global RNG
    probe = Image.new("L", (48, 40))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(3, "crops", "train/a/001.png"))
        expected = [tuple(RandomResizedCrop.get_params(probe, [0.08, 1.0], [1.0, 1.0])) for _ in range(5)]
    assert crop_boxes((48, 40), 5, 3, "train/a/001.png") == expected
    before = torch.random.get_rng_state()
    crop_boxes((48, 40), 5, 4, "train/a/001.png")
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is not touched


def test_student_draws_its_box_in_float64_from_its_generator() -> None:
    transform = StudentTrainTransform(32, 2, (0.5,) * 3, (0.5,) * 3)
    g, again = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    params = transform.draw(32, 32, g)
    torch.randperm(2, generator=again), torch.randperm(2, generator=again)  # the strip orders come first
    assert tuple(params["box"].tolist()) == resized_crop_box(32, 32, (0.5, 1.0), CROP_RATIO, again, torch.float64)


def test_central_box_keeps_the_allowed_aspect() -> None:
    assert central_box(32, 32, (3 / 4, 4 / 3)) == (0, 0, 32, 32)
    assert central_box(100, 40, (3 / 4, 4 / 3)) == (23, 0, 53, 40)  # too tall: full width, height 40 / (3/4)
    assert central_box(40, 100, (3 / 4, 4 / 3)) == (0, 23, 40, 53)  # too wide: full height, width 40 * 4/3
