"""fgdd.report names the precision each run computed in (run.json), per run and per cell: the same seed gives the
same digits only at the same precision."""

from __future__ import annotations

import csv
import json

from fgdd.report.__main__ import main
from fgdd.report.collect import find_runs, load_row
from fgdd.report.summary import aggregate
from tests.test_report import config, done, fake_run

FP32 = {"teacher": "fp32", "select": "fp32", "student": "fp32"}
BF16 = {"teacher": "loaded", "select": "fp32", "student": "bf16"}


def recorded(run, stages: dict[str, str] | None) -> None:
    (run / "run.json").write_text(json.dumps({"precision": stages} if stages else {}))


def test_runs_and_cells_name_their_precision(tmp_path, capsys) -> None:
    recorded(fake_run(tmp_path, "a", config({"name": "rded"}, 0), done(0.40)), FP32)
    recorded(fake_run(tmp_path, "b", config({"name": "rded"}, 1), done(0.50)), FP32)
    recorded(fake_run(tmp_path, "c", config({"name": "random_real"}, 0), done(0.30)), BF16)
    recorded(fake_run(tmp_path, "d", config({"name": "random_real"}, 1), done(0.31)), FP32)
    # before run.json held precisions: metrics.json's student/bf16, or nothing
    recorded(fake_run(tmp_path, "e", config({"name": "rded"}, 0, ipc=1), {**done(0.2), "student/bf16": 1.0}), None)
    recorded(fake_run(tmp_path, "f", config({"name": "rded"}, 0, ipc=50), done(0.6)), None)
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in map(load_row, find_runs(tmp_path))}
    assert [rows[k]["precision"] for k in "abcdef"] == ["fp32", "fp32", "student bf16", "fp32", "student bf16", "-"]
    cells = {(c["ipc"], c["method"]): c for c in aggregate(list(rows.values()), "student/top1_final")}
    assert cells[(10, "rded")]["precision"] == "fp32"
    assert cells[(10, "random_real")]["precision"] == "mixed: fp32 x1, student bf16 x1"
    out_csv = tmp_path / "table.csv"
    assert main([str(tmp_path), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "| 10 | random_real | soft-label | 30.5 +- 0.7 | 2 | - | - | 80.0 | 10.0 | 2.00 | 0.00 | mixed: fp32 x1, " \
           "student bf16 x1 |" in out
    assert {r["method"]: r["precision"] for r in csv.DictReader(out_csv.open()) if r["ipc"] == "10"} == {
        "rded": "fp32", "random_real": "mixed: fp32 x1, student bf16 x1"}
