"""``python -m fgdd.report.mosaics``: one class's mosaics of two runs side by side, cells outlined by path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fgdd.report.mosaics import main
from fgdd.selection import write_distilled_set
from fgdd.selection.dynamic import ForegroundAwareSelector
from fgdd.thresholds import QuantileThreshold, never
from tests.test_dynamic_selection import FixedForeground, fake_dataset, occupancy_by_index
from tests.test_selection import BrightnessObserver, make_split, memory_spec


def run_folder(tmp_path, name: str, threshold) -> str:
    """A run folder holding a 2x2-mosaic set of two classes and the config lines the figure reads."""
    split = make_split(per_class=8)
    selector = ForegroundAwareSelector(factor=2, segmenter=FixedForeground(occupancy_by_index), threshold=threshold,
                                       cache_dir=str(tmp_path / "cache"), num_candidates=3, mipc=8)
    selection = selector.select(split, BrightnessObserver(2), ipc=2, seed=0, spec=memory_spec(split.classes),
                                device=torch.device("cpu"), dataset=fake_dataset(split))
    run_dir = tmp_path / name
    write_distilled_set(run_dir / "distilled", selection, split.classes, ipc=2, factor=2, info={"seed": 0})
    config = {"selector": {"name": name}, "seed": 0}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return str(run_dir)


def orange_pixels(path) -> int:
    with Image.open(path) as figure:
        r, g, b = np.moveaxis(np.asarray(figure.convert("RGB")).astype(int), -1, 0)
    return int(((r > 230) & (g > 100) & (g < 150) & (b < 40)).sum())  # the whole-image outline (#ff7f0e)


def test_two_runs_side_by_side_show_whole_images_only_where_taken(tmp_path, capsys) -> None:
    rded = run_folder(tmp_path, "rded", never())
    fgdd = run_folder(tmp_path, "fgdd", QuantileThreshold(0.5))
    out = tmp_path / "figs" / "mosaics.png"
    assert main([rded, fgdd, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert orange_pixels(out) > 100  # fgdd's whole images are outlined
    assert main([rded, rded, "--out", str(tmp_path / "crops.png"), "--class", "b"]) == 0
    assert orange_pixels(tmp_path / "crops.png") == 0  # rded crops only: no whole-image outline


def test_the_default_class_is_the_one_whose_paths_differ_most(tmp_path) -> None:
    from fgdd.report.mosaics import RunSet, most_different_class

    rded = RunSet(Path(run_folder(tmp_path, "rded", never())))
    fgdd = RunSet(Path(run_folder(tmp_path, "fgdd", QuantileThreshold(0.5))))
    counts = {c: fgdd.whole_images(c) for c in fgdd.meta["classes"]}
    assert all(rded.whole_images(c) == 0 for c in counts)
    assert most_different_class([rded, fgdd]) == max(counts, key=lambda c: (counts[c], -list(counts).index(c)))
    assert fgdd.label == "fgdd, seed 0"


def test_a_run_without_a_set_or_an_unknown_class_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="holds no finished distilled set"):
        main([str(tmp_path / "empty")])
    rded = run_folder(tmp_path, "rded", never())
    with pytest.raises(SystemExit):
        main([rded, "--class", "zebra", "--out", str(tmp_path / "z.png")])
    assert "'zebra' is not a class of these runs: a, b" in capsys.readouterr().err
    assert not (tmp_path / "z.png").exists()
