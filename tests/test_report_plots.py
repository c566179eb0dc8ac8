"""The report's sweep figures show what users compare: a dot per seed, each seed joined across methods, the mean,
and a y axis zoomed to the data (a one-point difference fills the panel); no bars from 0; one panel per dataset
and IPC."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from fgdd.report.collect import DONE
from fgdd.report.plots import grid_accuracy, paired_seeds
from fgdd.report.summary import aggregate

METRIC = "student/top1_final"


def row(dataset: str, ipc: int, method: str, seed: int, top1: float) -> dict:
    return {"run": f"/runs/{dataset}/{method}-{ipc}-{seed}", "dataset": dataset, "selector": method,
            "method": method, "student": "convnet3", "teacher": "convnet3", "evaluator": "soft-label", "ipc": ipc,
            "seed": seed, "status": DONE, METRIC: top1}


def test_seeds_are_dots_joined_across_methods_on_an_axis_zoomed_to_the_data() -> None:
    fig, ax = plt.subplots()
    # rded beats random_real by one point on seed 0 and loses by one on seed 1; fgdd lacks seed 1
    paired_seeds(ax, ["random_real", "rded", "fgdd(saliency, quantile 0.5)"],
                 [{0: 60.0, 1: 61.0}, {0: 61.0, 1: 60.0}, {0: 60.5}], "top-1 (%)")
    seeds = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines() if line.get_label().startswith("seed")}
    assert seeds["seed 0"] == [60.0, 61.0, 60.5]
    assert seeds["seed 1"][:2] == [61.0, 60.0] and seeds["seed 1"][2] != seeds["seed 1"][2]  # nan: the line breaks
    low, high = ax.get_ylim()
    assert 58.0 < low < 60.0 and 61.0 < high < 63.0  # one point spans at least a third of the axis
    assert not ax.patches  # no bars
    assert [t.get_text() for t in ax.texts] == ["60.5", "60.5", "60.5"]  # each method's mean, written beside it
    assert ax.get_xticklabels()[2].get_text() == "fgdd\n(saliency, quantile 0.5)"
    plt.close(fig)


def test_grid_figure_has_a_panel_per_dataset_and_ipc(tmp_path, monkeypatch) -> None:
    rows = [row(dataset, ipc, method, seed, 0.3 + 0.01 * seed + (0.02 if method == "rded" else 0.0))
            for dataset in ("cifar10", "shapes") for ipc in (1, 10) for method in ("random_real", "rded")
            for seed in (0, 1, 2) if (dataset, ipc) != ("shapes", 1)]
    drawn: dict = {}
    monkeypatch.setattr("fgdd.report.plots.save_figure", lambda fig, path: drawn.update(fig=fig) or path)
    path = grid_accuracy(rows, aggregate(rows, METRIC), METRIC, tmp_path / "grid_accuracy.png")
    assert path == tmp_path / "grid_accuracy.png"
    axes = drawn["fig"].axes
    titles = [ax.get_title() for ax in axes]
    assert titles == ["cifar10, IPC 1\nstudent convnet3, teacher convnet3, soft-label",
                      "cifar10, IPC 10\nstudent convnet3, teacher convnet3, soft-label",
                      "", "shapes, IPC 10\nstudent convnet3, teacher convnet3, soft-label"]  # shapes has no IPC 1
    assert not axes[2].axison
    assert all(line.get_ydata()[1] - line.get_ydata()[0] == pytest.approx(2.0)  # each seed paired: +2 points
               for line in axes[0].get_lines() if line.get_label().startswith("seed"))
    legend = [t.get_text() for t in drawn["fig"].legends[0].get_texts()]
    assert legend == ["mean over seeds", "seed 0", "seed 1", "seed 2"]
    plt.close(drawn["fig"])
