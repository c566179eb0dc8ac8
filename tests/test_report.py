"""fgdd.report: run folders -> rows -> mean +- std over seeds, unfinished runs counted."""

from __future__ import annotations

import json

import pytest
import yaml

from fgdd.report.__main__ import main
from fgdd.report.collect import aggregate, find_runs, load_row


def fake_run(root, name, selector, seed, top1=None):
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": {"name": "shapes"}, "selector": selector, "model": {"name": "convnet3"},
              "teacher": {"arch": {"name": "convnet3"}}, "ipc": 10, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "run.json").write_text("{}")
    if top1 is not None:
        (run / "metrics.json").write_text(json.dumps({"student/top1_final": top1, "teacher/val_top1": 0.6}))


FGDD = {"name": "fgdd", "segmenter": {"name": "cam"}, "threshold": {"_target_": "x", "name": "quantile", "q": 0.7},
        "resize_to": "cell", "compete": True}


def test_aggregate_over_seeds(tmp_path, capsys) -> None:
    fake_run(tmp_path, "a", {"name": "rded"}, 0, 0.40)
    fake_run(tmp_path, "b", {"name": "rded"}, 1, 0.50)
    fake_run(tmp_path, "c", FGDD, 0, 0.60)
    fake_run(tmp_path, "d", FGDD, 1)  # unfinished
    rows = [load_row(r) for r in find_runs(tmp_path)]
    summary = {row["method"]: row for row in aggregate(rows, "student/top1_final")}
    assert summary["rded"]["mean"] == pytest.approx(0.45) and summary["rded"]["seeds"] == 2
    assert summary["rded"]["std"] == pytest.approx(0.0707, abs=1e-3)
    fgdd = summary["fgdd(cam, quantile 0.7)"]
    assert fgdd["seeds"] == 1 and fgdd["unfinished"] == 1
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| shapes | convnet3 | 10 | rded | 45.0 +- 7.1 | 2 | 60.0 |" in out
    assert "1 (1 unfinished)" in out


def test_report_on_a_folder_without_runs_is_an_error(tmp_path, capsys) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no fgdd run folders" in capsys.readouterr().err
