"""The per-run figure of what the segmenter saw: which kept images are sampled, and that their masks are drawn."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from fgdd.report.figures import ForegroundSample, foreground_samples, foreground_samples_figure, pick_samples
from fgdd.selection import write_distilled_set
from fgdd.selection.dynamic import ForegroundAwareSelector
from fgdd.thresholds import QuantileThreshold
from tests.test_dynamic_selection import FixedForeground, fake_dataset, occupancy_by_index
from tests.test_selection import BrightnessObserver, make_split, memory_spec


def records(paths: str) -> list[dict]:
    return [{"class": "a", "label": 0, "rank": rank, "path": "resize" if p == "r" else "crop"}
            for rank, p in enumerate(paths)]


def test_samples_show_both_paths_in_rank_order_and_are_seeded() -> None:
    picked = pick_samples(records("rcrccrcc"), 4, seed=0)
    assert [r["path"] for r in picked].count("resize") == 2 and len(picked) == 4
    assert [r["rank"] for r in picked] == sorted(r["rank"] for r in picked)
    assert picked == pick_samples(records("rcrccrcc"), 4, seed=0)
    assert any(pick_samples(records("cccccccc"), 4, seed=s) != pick_samples(records("cccccccc"), 4, seed=0)
               for s in range(1, 6))
    assert [r["path"] for r in pick_samples(records("rrrrrc"), 4, seed=0)].count("crop") == 1  # one crop only
    assert len(pick_samples(records("rc"), 4, seed=0)) == 2  # fewer kept than asked: all of them


def test_figure_of_a_selection_shows_the_segmenters_masks(tmp_path) -> None:
    split = make_split(per_class=6)
    segmenter = FixedForeground(occupancy_by_index)
    selector = ForegroundAwareSelector(factor=2, segmenter=segmenter, threshold=QuantileThreshold(0.5),
                                       cache_dir=str(tmp_path / "cache"), num_candidates=3, mipc=6)
    selection = selector.select(split, BrightnessObserver(2), ipc=1, seed=0, spec=memory_spec(split.classes),
                                device=torch.device("cpu"), dataset=fake_dataset(split))
    root = write_distilled_set(tmp_path / "set", selection, split.classes, ipc=1, factor=2, info={"seed": 0})
    samples = foreground_samples(root, split, segmenter, split.classes, per_class=3)
    assert [s.class_id for s in samples] == ["a"] * 3 + ["b"] * 3
    for sample in samples:
        assert sample.mask.shape == (32, 32)
        assert abs(sample.mask.mean() - occupancy_by_index(sample.source)) < 1 / 32 ** 2 + 1e-9  # its own mask
        assert abs(sample.occupancy - occupancy_by_index(sample.source)) < 1e-3
        assert sample.path == ("resize" if sample.occupancy >= sample.threshold else "crop")
    assert {s.path for s in samples} == {"crop", "resize"}
    def red_pixels(figure_samples, name: str) -> int:
        path = foreground_samples_figure(figure_samples, tmp_path / "figures" / name)
        with Image.open(path) as figure:
            r, g, b = np.moveaxis(np.asarray(figure.convert("RGB")).astype(int), -1, 0)
        return int(((r > 180) & (g < 90) & (b < 90)).sum())  # the outline's red; not the orange titles

    assert red_pixels(samples, "foreground_samples.png") > 100
    blank = [ForegroundSample(**{**s.__dict__, "mask": np.zeros_like(s.mask)}) for s in samples]
    assert red_pixels(blank, "blank.png") < 10  # no mask, no outline: the red comes from the masks


def test_figure_of_no_samples_is_still_written(tmp_path) -> None:
    image = Image.new("RGB", (20, 10))
    lone = ForegroundSample("a", "A", "a/0.png", image, np.zeros((10, 20), bool), None, None, "crop", (0, 0, 10, 10))
    assert foreground_samples_figure([lone], tmp_path / "one.png").stat().st_size > 0
    assert foreground_samples_figure([], tmp_path / "none.png").stat().st_size > 0
