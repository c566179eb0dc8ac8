"""The foreground-aware selector: thresholds, the per-image decision, occupancy caching, and RDED equivalence."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fgdd.foreground.occupancy import OccupancyStore, cache_key
from fgdd.selection import RDEDSelector, write_distilled_set
from fgdd.selection.dynamic import ForegroundAwareSelector
from fgdd.thresholds import GlobalThreshold, MeanThreshold, QuantileThreshold, always, never
from tests.test_selection import BrightnessObserver, make_split, memory_spec

CPU = torch.device("cpu")


class FixedForeground:
    """A segmenter whose occupancy per source is given: a mask with the first k pixels set."""

    name = "fixed"

    def __init__(self, occupancy_of) -> None:
        self.occupancy_of = occupancy_of
        self.calls: list[str] = []

    def setup(self, context) -> None:
        self.context = context

    def cache_key(self) -> dict:
        return {"name": self.name}

    def masks(self, images, *, labels, prompts, sources):
        self.calls += list(sources)
        masks = []
        for image, source in zip(images, sources):
            mask = np.zeros(image.size[1] * image.size[0], dtype=bool)
            mask[: int(round(self.occupancy_of(source) * mask.size))] = True
            masks.append(mask.reshape(image.size[1], image.size[0]))
        return masks


def occupancy_by_index(source: str) -> float:
    return int(source.split("/")[1].split(".")[0]) % 6 / 10  # images 0..5 of a class: 0.0 .. 0.5


def fake_dataset(split) -> SimpleNamespace:
    return SimpleNamespace(name="memory", classes=split.classes, class_names=split.classes,
                           spec=memory_spec(split.classes))


def select(selector, split, seed=0, ipc=1):
    dataset = fake_dataset(split)
    return selector.select(split, BrightnessObserver(2), ipc=ipc, seed=seed, spec=dataset.spec, device=CPU,
                           dataset=dataset)


def fgdd(tmp_path, threshold, segmenter=None, **kwargs) -> ForegroundAwareSelector:
    settings = {"num_candidates": 3, "mipc": 6, **kwargs}
    return ForegroundAwareSelector(factor=2, segmenter=segmenter or FixedForeground(occupancy_by_index),
                                   threshold=threshold, cache_dir=str(tmp_path / "cache"), **settings)


def test_threshold_policies_on_hand_values() -> None:
    occupancies = {0: np.array([0.1, 0.2, 0.3, 0.4, 0.5]), 1: np.array([0.9, 0.9, 0.1])}
    assert QuantileThreshold(0.5)(occupancies) == pytest.approx({0: 0.3, 1: 0.9})
    assert QuantileThreshold(0.25)(occupancies) == pytest.approx({0: 0.2, 1: 0.5})
    assert MeanThreshold()(occupancies) == pytest.approx({0: 0.3, 1: 1.9 / 3})
    assert GlobalThreshold(0.4)(occupancies) == {0: 0.4, 1: 0.4}
    assert never()(occupancies) == {0: math.inf, 1: math.inf}
    assert always()(occupancies) == {0: -math.inf, 1: -math.inf}


def test_threshold_never_is_exactly_rded(tmp_path) -> None:
    split = make_split(per_class=6)
    segmenter = FixedForeground(occupancy_by_index)
    rded = select(RDEDSelector(factor=2, num_candidates=3, mipc=6), split)
    dynamic = select(fgdd(tmp_path, never(), segmenter), split)
    a = write_distilled_set(tmp_path / "rded", rded, split.classes, ipc=1, factor=2)
    b = write_distilled_set(tmp_path / "fgdd", dynamic, split.classes, ipc=1, factor=2)
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    assert (a / "a" / "0000.jpg").read_bytes() == (b / "a" / "0000.jpg").read_bytes()
    assert segmenter.calls == []  # nothing was segmented


def test_threshold_always_resizes_every_image(tmp_path) -> None:
    split = make_split(per_class=6)
    selection = select(fgdd(tmp_path, always()), split)
    for patches in selection.values():
        assert len(patches) == 4
        assert all(p.path == "resize" and p.box == (0, 0, 32, 32) for p in patches)


def test_images_at_or_above_the_class_threshold_take_the_resize_path(tmp_path) -> None:
    split = make_split(per_class=6)
    selector = fgdd(tmp_path, QuantileThreshold(0.5))
    selection = select(selector, split)
    for label, patches in selection.items():
        threshold = selector.class_threshold[label]
        values = [occupancy_by_index(split.relpath(i)) for i in split.indices_of_class(label)]
        assert threshold == pytest.approx(float(np.quantile(values, 0.5)), abs=1e-3)
        for patch in patches:
            assert patch.occupancy == pytest.approx(occupancy_by_index(patch.source), abs=1e-3)
            assert patch.threshold == threshold
            assert patch.path == ("resize" if patch.occupancy >= threshold else "crop")
            if patch.path == "resize":
                assert patch.box == (0, 0, 32, 32) and patch.pixels.shape == (3, 16, 16)  # whole image -> one cell
    root = write_distilled_set(tmp_path / "set", selection, split.classes, ipc=1, factor=2)
    records = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert {r["path"] for r in records} == {"crop", "resize"}
    assert all(r["occupancy"] is not None and r["threshold"] is not None for r in records)


def test_resize_to_full_gives_whole_distilled_images(tmp_path) -> None:
    split = make_split(per_class=8)
    selection = select(fgdd(tmp_path, always(), resize_to="full", mipc=8), split, ipc=2)
    for patches in selection.values():
        assert len(patches) == 2 and all(p.layout == "full" and p.pixels.shape == (3, 32, 32) for p in patches)
    root = write_distilled_set(tmp_path / "set", selection, split.classes, ipc=2, factor=2)
    assert sorted(p.name for p in (root / "a").iterdir()) == ["0000.jpg", "0001.jpg"]


def test_without_competition_resized_images_rank_first(tmp_path) -> None:
    split = make_split(per_class=6)
    selection = select(fgdd(tmp_path, QuantileThreshold(0.5), compete=False), split)
    for patches in selection.values():
        paths = [p.path for p in patches]
        assert paths == sorted(paths, key=lambda path: path != "resize")  # every resize before every crop


def test_occupancy_is_cached_and_only_drawn_images_are_segmented(tmp_path) -> None:
    split = make_split(per_class=10)
    segmenter = FixedForeground(occupancy_by_index)
    select(fgdd(tmp_path, QuantileThreshold(0.5), segmenter, mipc=6), split, seed=0)
    assert len(segmenter.calls) == 12  # 6 drawn per class, not all 10
    first = list(segmenter.calls)
    select(fgdd(tmp_path, QuantileThreshold(0.5), segmenter, mipc=6), split, seed=0)
    assert segmenter.calls == first  # the second run segmented nothing
    select(fgdd(tmp_path, QuantileThreshold(0.5), segmenter, mipc=6), split, seed=1)
    assert set(segmenter.calls[12:]).isdisjoint(first)  # another seed: only the newly drawn images


def test_a_tampered_occupancy_cache_is_recomputed_not_trusted(tmp_path) -> None:
    segmenter = FixedForeground(occupancy_by_index)
    key = cache_key("memory", ["a"], "/x", segmenter)
    store = OccupancyStore(tmp_path, key)
    store.update({"a/000.png": 0.25})
    stored = json.loads(store.path.read_text())
    stored["occupancy"]["a/000.png"] = 0.99  # edited without updating the checksum
    store.path.write_text(json.dumps(stored))
    reloaded = OccupancyStore(tmp_path, key)
    assert reloaded.values == {}
    assert store.path.with_name(store.path.name + ".untrusted").exists()  # set aside, not deleted


def test_segmenter_calls_take_the_segmenter_batch_size(tmp_path) -> None:
    # segment_batch_size null (the default): as many images per call as the segmenter's own forward batch
    split = make_split(per_class=10)
    sizes: list[int] = []

    class Batched(FixedForeground):
        batch_size = 5

        def masks(self, images, **kwargs):
            sizes.append(len(images))
            return super().masks(images, **kwargs)

    select(fgdd(tmp_path / "own", QuantileThreshold(0.5), Batched(occupancy_by_index), mipc=6), split)
    assert sizes == [5, 5, 2]  # 12 drawn images, classes mixed
    sizes.clear()
    select(fgdd(tmp_path / "set", QuantileThreshold(0.5), Batched(occupancy_by_index), mipc=6,
                segment_batch_size=4), split)
    assert sizes == [4, 4, 4]
