"""The pipeline builds each config group once and hands the objects down: one dataset, one selector (whose
segmenter also draws the figures), the evaluator given the run's dataset object."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgdd.pipeline import build_evaluator, run
from tests.test_run import tiny_cfg


@pytest.mark.parametrize("evaluator", ["holdout", "full_real", "hard_lr_search", "ddranking_full_real"])
def test_an_evaluator_that_reads_the_dataset_gets_the_runs_object(evaluator: str, tmp_path: Path) -> None:
    dataset = object()  # nothing builds a dataset of its own: its config would need the data
    built = build_evaluator(tiny_cfg(tmp_path, f"evaluator={evaluator}").evaluator, dataset)
    assert built.dataset is dataset


@pytest.mark.parametrize("evaluator", ["rded", "ddranking_rded"])
def test_an_evaluator_without_a_dataset_is_built_as_configured(evaluator: str, tmp_path: Path) -> None:
    built = build_evaluator(tiny_cfg(tmp_path, f"evaluator={evaluator}").evaluator, object())
    assert getattr(built, "dataset", None) is None  # ddranking_rded: dataset null (no holdout)


def test_a_run_builds_its_dataset_selector_and_segmenter_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fgdd.data.shapes import ShapesDataset
    from fgdd.foreground.ground_truth import GroundTruthSegmenter
    from fgdd.selection.dynamic import ForegroundAwareSelector

    made: dict[str, int] = {}
    for cls in (ShapesDataset, GroundTruthSegmenter, ForegroundAwareSelector):
        init = cls.__init__

        def counted(self, *args, _init=init, _name=cls.__name__, **kwargs) -> None:
            made[_name] = made.get(_name, 0) + 1
            _init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    cfg = tiny_cfg(tmp_path, "selector=fgdd", "segmenter=ground_truth", "threshold=median", "evaluator=holdout",
                   "evaluator.holdout_per_class=1", "evaluator.epochs=1")
    metrics = run(cfg, tmp_path / "run")
    assert "holdout/top1_final" in metrics
    assert (tmp_path / "run" / "figures" / "foreground_samples.png").is_file()  # drawn by the selector's segmenter
    # fgdd.config.validate builds the dataset and selector once to check their settings before the run folder
    # exists; the run itself builds each once more (before: the selector 3x, its segmenter 4x, the dataset 3x)
    assert made == {"ShapesDataset": 2, "ForegroundAwareSelector": 2, "GroundTruthSegmenter": 2}
