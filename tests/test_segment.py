"""python -m fgdd.segment: occupancy measured ahead of a sweep in shards; the run then segments nothing."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir

from fgdd.errors import ConfigError
from fgdd.run import CONF_DIR, run
from fgdd.segment import segment, shard_images
from tests.test_run import TINY, TINY_SHAPES, tiny_cfg


def segment_cfg(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="segment", overrides=[*TINY_SHAPES, *TINY, f"data_root={tmp_path / 'data'}",
                                                          f"cache_dir={tmp_path / 'cache'}", *overrides])


def test_shards_split_the_drawn_images_without_overlap(tmp_path) -> None:
    from hydra.utils import instantiate

    split = instantiate(segment_cfg(tmp_path).dataset, _convert_="all").train()
    for by in ("image", "class"):
        shards = [shard_images(split, 12, [0, 1], index, 3, by) for index in range(3)]
        everything = shard_images(split, 12, [0, 1], 0, 1, by)
        assert sorted(i for shard in shards for i in shard) == sorted(everything)  # a partition
        assert all(shards)
    with pytest.raises(ConfigError, match="shard.index"):
        shard_images(split, 12, [0], 3, 3, "image")


def test_sharded_segmentation_fills_the_cache_that_the_run_reads(tmp_path, monkeypatch) -> None:
    results = [segment(segment_cfg(tmp_path, "segmenter=ground_truth", "shard.count=2", f"shard.index={index}",
                                   "shard.seeds=[0]")) for index in (0, 1)]
    assert [r["images"] for r in results] == [60, 60]  # 10 classes x mipc 12, halved
    assert all(r["with_occupancy"] == 60 for r in results)

    from fgdd.foreground import ground_truth

    segmenter_class = next(v for v in vars(ground_truth).values()
                           if isinstance(v, type) and v.__module__ == ground_truth.__name__ and hasattr(v, "masks"))
    monkeypatch.setattr(segmenter_class, "masks", lambda *a, **k: pytest.fail("the run segmented again"))
    # figures.foreground_samples=0: that figure segments a few kept images again, which is not occupancy
    run(tiny_cfg(tmp_path, "selector=fgdd", "segmenter=ground_truth", "evaluator.epochs=1",
                 "figures.foreground_samples=0"), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "occupancy.json").read_text())
    assert sum(len(v["occupancy"]) for v in summary.values()) == 120
    assert not (tmp_path / "run" / "figures" / "foreground_samples.png").exists()  # switched off
