"""fgdd.report: run folders -> rows -> one cell per setting (mean +- std over seeds, published number and
difference, costs) as Markdown and CSV; a real Hydra sweep's grid -> the missing, failed and unfinished jobs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from fgdd.report.__main__ import main
from fgdd.report.collect import find_runs, load_row
from fgdd.report.published import load_published
from fgdd.report.summary import aggregate
from fgdd.report.sweep import canonical, expand, find_grids

SOFT = {"_target_": "fgdd.evaluation.SoftLabelEvaluator", "hard_labels": False}
HARD = {"_target_": "fgdd.evaluation.SoftLabelEvaluator", "hard_labels": True}
FGDD = {"name": "fgdd", "segmenter": {"name": "cam"}, "threshold": {"_target_": "x", "name": "quantile", "q": 0.7},
        "resize_to": "cell", "compete": True}
NEVER = {**FGDD, "threshold": {"_target_": "x", "name": "never"}}


def config(selector: dict, seed: int, *, dataset: str = "cifar10", ipc: int = 10, evaluator: dict = SOFT) -> dict:
    return {"dataset": {"name": dataset}, "selector": selector, "model": {"name": "convnet3"},
            "teacher": {"arch": {"name": "convnet3"}, "checkpoint": None}, "evaluator": evaluator,
            "ipc": ipc, "seed": seed}


def fake_run(root, name, cfg, metrics=None, failure=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "run.json").write_text("{}")
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    if failure is not None:
        (run / "failed.json").write_text(json.dumps(failure))
    return run


def done(top1: float, distill_s: float = 10.0, nbytes: float = 2e6) -> dict:
    return {"student/top1_final": top1, "teacher/val_top1": 0.8, "cost/distill_s": distill_s,
            "cost/distilled_bytes": nbytes, "cost/soft_label_bytes": 0.0}


OOM = {"stage": "select", "error": "RuntimeError", "message": "CUDA out of memory\n(traceback follows)",
       "time": "2026-01-02T03:04:05+00:00"}
SIGTERM = {"stage": "student", "error": "SystemExit", "message": "143", "time": "2026-01-03T04:05:06+00:00"}


def write_published(path, rows: list[list]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "student", "ipc", "method", "evaluator", "top1", "source"])
        writer.writerows(rows)


def test_mean_std_over_seeds_with_failed_and_unfinished_runs(tmp_path) -> None:
    fake_run(tmp_path, "a", config({"name": "rded"}, 0), done(0.40))
    fake_run(tmp_path, "b", config({"name": "rded"}, 1), done(0.50))
    fake_run(tmp_path, "c", config({"name": "rded"}, 2), failure=OOM)
    fake_run(tmp_path, "d", config(FGDD, 0), done(0.60))
    fake_run(tmp_path, "e", config(FGDD, 1))  # unfinished: neither metrics.json nor failed.json
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in map(load_row, find_runs(tmp_path))}
    assert [rows[k]["status"] for k in "abcde"] == ["done", "done", "failed", "done", "unfinished"]
    assert rows["c"]["failure"]["error"] == "RuntimeError"
    cells = {c["method"]: c for c in aggregate(list(rows.values()), "student/top1_final")}
    rded = cells["rded"]
    assert (rded["seeds"], rded["failed"], rded["unfinished"], rded["seed_list"]) == (2, 1, 0, [0, 1])
    assert rded["mean"] == pytest.approx(0.45) and rded["std"] == pytest.approx(0.0707107, abs=1e-6)
    fgdd = cells["fgdd(cam, quantile 0.7)"]
    assert (fgdd["seeds"], fgdd["unfinished"], fgdd["std"]) == (1, 1, 0.0)
    assert list(cells) == ["rded", "fgdd(cam, quantile 0.7)"]  # baselines first


def test_a_run_stopped_by_a_signal_says_stopped_and_that_a_rerun_resumes_it(tmp_path, capsys) -> None:
    fake_run(tmp_path, "broke", config({"name": "rded"}, 0), failure=OOM)
    fake_run(tmp_path, "stopped", config({"name": "rded"}, 1), failure=SIGTERM)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Failed runs (failed.json, the latest attempt): 2" in out
    assert "- `broke`: stage select, RuntimeError: CUDA out of memory (2026-01-02" in out
    assert ("- `stopped`: stopped in stage student (SystemExit 143, 2026-01-03T04:05:06+00:00); rerunning resumes "
            "it") in out
    assert "failed (select)" in out and "stopped (student)" in out  # the run table's status column


def test_published_numbers_and_difference_in_markdown_and_csv(tmp_path, capsys) -> None:
    runs = tmp_path / "sweep"
    fake_run(runs, "r0", config({"name": "rded"}, 0), done(0.52))
    fake_run(runs, "r1", config({"name": "rded"}, 1), done(0.48))
    fake_run(runs, "h0", config({"name": "rded"}, 0, evaluator=HARD), done(0.30))
    fake_run(runs, "n0", config(NEVER, 0), done(0.47))
    fake_run(runs, "q0", config(FGDD, 0), done(0.55))
    fake_run(runs, "x0", config({"name": "rded"}, 0, ipc=50), done(0.70))
    published = tmp_path / "published.csv"
    write_published(published, [
        ["cifar10", "convnet3", 10, "rded", "soft-label", 50.2, "RDED Table 2"],
        ["cifar10", "convnet3", 10, "fgdd(cam, never)", "soft-label", 50.2, "RDED Table 2 (never = RDED)"],
        ["cifar10", "convnet3", 10, "fgdd", "soft-label", "", "paper (not public)"],
        ["cifar10", "convnet3", 50, "rded", "soft-label", 68.4, "RDED Table 2"],
    ])
    out_csv, out_md = tmp_path / "out" / "table.csv", tmp_path / "out" / "table.md"
    assert main([str(runs), "--published", str(published), "--csv", str(out_csv), "--markdown", str(out_md)]) == 0
    out = capsys.readouterr().out
    # rded soft-label: mean 50.0 +- 2.8 over 2 seeds, published 50.2, diff -0.2; the hard-label row gets none
    assert "| cifar10 | convnet3 | convnet3 | 10 | rded | soft-label | 50.0 +- 2.8 | 2 | 50.2 | -0.2 | 80.0 | 10.0 | " \
           "2.00 | 0.00 |" in out
    assert "| 10 | rded | hard-label | 30.0 +- 0.0 | 1 | - | - |" in out
    assert "| 10 | fgdd(cam, never) | soft-label | 47.0 +- 0.0 | 1 | 50.2 | -3.2 |" in out  # full label wins
    assert "| 10 | fgdd(cam, quantile 0.7) | soft-label | 55.0 +- 0.0 | 1 | - | - |" in out  # paper row: empty
    assert "| 50 | rded | soft-label | 70.0 +- 0.0 | 1 | 68.4 | +1.6 |" in out
    assert "sources: RDED Table 2; RDED Table 2 (never = RDED); paper (not public)." in out
    assert out_md.read_text() in out  # the Markdown file is what was printed after the run table
    table = {(r["ipc"], r["method"], r["evaluator"]): r for r in csv.DictReader(out_csv.open())}
    soft = table[("10", "rded", "soft-label")]
    assert (soft["mean_pct"], soft["std_pct"], soft["published_pct"], soft["diff_pct"]) == \
           ("50.00", "2.83", "50.20", "-0.20")
    assert (soft["seeds"], soft["teacher_top1_pct"], soft["distilled_mb"], soft["soft_label_mb"]) == \
           ("2", "80.00", "2.0000", "0.0000")
    assert soft["published_source"] == "RDED Table 2"
    assert table[("10", "rded", "hard-label")]["published_pct"] == ""
    assert len(table) == 5
    assert not list(out_csv.parent.glob(".*.tmp"))  # written through a temporary file and renamed


def test_cost_columns_are_medians_and_read_older_metric_names(tmp_path) -> None:
    old = [{"student/top1_final": 0.5, "time/select_s": s, "distilled/bytes": b} for s, b in
           ((10.0, 1.5e6), (30.0, 2.5e6), (20.0, 2.0e6))]
    for seed, metrics in enumerate(old):
        fake_run(tmp_path, f"old{seed}", config({"name": "rded"}, seed), metrics)
    fake_run(tmp_path, "new0", config({"name": "random_real"}, 0),
             {**done(0.3, distill_s=1.0, nbytes=4e6), "cost/soft_label_bytes": 5e5, "time/select_s": 99.0})
    cells = {c["method"]: c for c in aggregate([load_row(r) for r in find_runs(tmp_path)], "student/top1_final")}
    assert (cells["rded"]["distill_s"], cells["rded"]["distilled_bytes"]) == (20.0, 2.0e6)
    assert cells["rded"]["soft_label_bytes"] is None  # older runs did not record it
    new = cells["random_real"]  # cost/* wins over the older names
    assert (new["distill_s"], new["distilled_bytes"], new["soft_label_bytes"]) == (1.0, 4e6, 5e5)


def test_evaluator_labels_keep_protocols_apart() -> None:
    from fgdd.report.collect import evaluator_label

    assert evaluator_label(SOFT) == "soft-label" and evaluator_label(None) == "soft-label"
    assert evaluator_label({**SOFT, "soft_labels": "online"}) == "soft-label"
    assert evaluator_label(HARD) == "hard-label"
    assert evaluator_label({**HARD, "soft_labels": "stored"}) == "hard-label"  # no teacher, nothing stored
    stored = {**SOFT, "soft_labels": "stored", "soft_label_topk": 10, "soft_label_rounds": 30}
    assert evaluator_label(stored) == "soft-label (stored top-10, 30 rounds)"
    assert evaluator_label({"_target_": "my.KDEvaluator", "hard_labels": False}) == "KDEvaluator:soft-label"


def test_published_csv_errors(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,student,ipc,method,top1\ncifar10,convnet3,10,rded,50.2\n")
    with pytest.raises(ValueError, match="missing column.*source"):
        load_published(bad)
    write_published(bad, [["cifar10", "convnet3", 10, "rded", "soft-label", 0.502 * 1000, "x"]])
    with pytest.raises(ValueError, match=r"bad.csv:2: top1 is in percent"):
        load_published(bad)
    fake_run(tmp_path, "a", config({"name": "rded"}, 0), done(0.4))
    assert main([str(tmp_path / "a"), "--published", str(bad)]) == 2
    assert "top1 is in percent" in capsys.readouterr().err


def test_report_on_a_folder_without_runs_is_an_error(tmp_path, capsys) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no fgdd run folders" in capsys.readouterr().err


APP = """
import json
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig

TOP1 = {("random_real", 1): 0.30, ("random_real", 10): 0.50, ("rded", 1): 0.40, ("rded", 10): 0.60}


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg):
    run = Path(HydraConfig.get().runtime.output_dir)
    job = (cfg.selector, cfg.ipc, cfg.seed)
    if job == ("rded", 10, 1):
        return  # never got to write anything: a missing job
    config = {"dataset": {"name": "cifar10"}, "selector": {"name": cfg.selector}, "model": {"name": "convnet3"},
              "teacher": {"arch": {"name": "convnet3"}}, "ipc": cfg.ipc, "seed": cfg.seed,
              "evaluator": {"_target_": "fgdd.evaluation.SoftLabelEvaluator", "hard_labels": False}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "run.json").write_text("{}")
    if job == ("rded", 1, 1):
        failure = {"stage": "select", "error": "RuntimeError", "message": "CUDA out of memory", "time": "2026-01-02"}
        (run / "failed.json").write_text(json.dumps(failure))
    elif job != ("random_real", 10, 1):  # that one is left unfinished
        top1 = TOP1[cfg.selector, cfg.ipc] + 0.02 * cfg.seed
        metrics = {"student/top1_final": top1, "teacher/val_top1": 0.8, "cost/distill_s": 5.0,
                   "cost/distilled_bytes": 1e6, "cost/soft_label_bytes": 0.0}
        (run / "metrics.json").write_text(json.dumps(metrics))


main()
"""

APP_CONF = """
ipc: 10
seed: 0
selector: rded
hydra:
  sweep:
    dir: ${oc.env:SWEEP_DIR}
    subdir: cifar10/${selector}-ipc${ipc}-seed${seed}
  job:
    chdir: false
"""


@pytest.fixture(scope="module")
def hydra_sweep(tmp_path_factory):
    """A real Hydra multirun (a tiny app writing fgdd-like run folders): 8 jobs, 5 done, 1 failed,
    1 unfinished, 1 that never wrote its folder."""
    root = tmp_path_factory.mktemp("hydra_sweep")
    (root / "conf").mkdir()
    (root / "conf" / "app.yaml").write_text(APP_CONF)
    (root / "app.py").write_text(textwrap.dedent(APP))
    sweep = root / "sweeps" / "table"
    subprocess.run([sys.executable, str(root / "app.py"), "-m", "selector=random_real,rded", "ipc=1,10",
                    "seed=range(0,2)"], check=True, cwd=root, capture_output=True,
                   env={"SWEEP_DIR": str(sweep), "PATH": "/usr/bin:/bin"})
    return sweep


def test_grid_expansion_matches_what_hydra_ran(hydra_sweep) -> None:
    (grid,) = find_grids(hydra_sweep)
    assert grid.command == ["selector=random_real,rded", "ipc=1,10", "seed=range(0,2)"]
    assert grid.swept == ["selector", "ipc", "seed"] and len(grid.cells) == 8
    ran = {canonical(yaml.safe_load(p.read_text())) for p in hydra_sweep.glob("*/*/.hydra/overrides.yaml")}
    assert {canonical(cell) for cell in grid.cells} == ran
    assert expand(["a=1", "b=x,y", "a=2,3"]) == (
        [["a=2", "b=x"], ["a=2", "b=y"], ["a=3", "b=x"], ["a=3", "b=y"]], ["a", "b"])  # later a= replaces, in place


def test_report_lists_missing_failed_and_unfinished_jobs(hydra_sweep, tmp_path, capsys) -> None:
    published = tmp_path / "published.csv"
    write_published(published, [["cifar10", "convnet3", 1, "rded", "soft-label", 23.5, "RDED Table 2"]])
    assert main([str(hydra_sweep), "--published", str(published), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "made by: `python -m fgdd.run -m selector=random_real,rded ipc=1,10 'seed=range(0,2)'`" in out
    assert "Jobs in its grid: 8; done 5, failed 1, unfinished 1, missing 1." in out
    assert "- `selector=rded ipc=10 seed=1`" in out  # the missing job, by its swept values
    assert ("Failed runs (failed.json, the latest attempt): 1\n- `cifar10/rded-ipc1-seed1` (selector=rded ipc=1 "
            "seed=1): stage select, RuntimeError: CUDA out of memory (2026-01-02)") in out
    assert "Unfinished runs (running, or killed): 1\n- `cifar10/random_real-ipc10-seed1` (selector=random_real " \
           "ipc=10 seed=1)" in out
    assert "failed (select)" in out and "unfinished" in out  # the run table's status column
    assert "| cifar10 | convnet3 | convnet3 | 1 | rded | soft-label | 40.0 +- 0.0 | 1 (1 failed) | 23.5 | +16.5 |" \
        in out
    assert "| 1 | random_real | soft-label | 31.0 +- 1.4 | 2 | - | - | 80.0 | 5.0 | 1.00 | 0.00 |" in out
    assert "| 10 | random_real | soft-label | 50.0 +- 0.0 | 1 (1 unfinished) |" in out
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [(r["ipc"], r["method"], r["seeds"], r["failed"], r["unfinished"]) for r in rows] == [
        ("1", "random_real", "2", "0", "0"), ("1", "rded", "1", "1", "0"),
        ("10", "random_real", "1", "0", "1"), ("10", "rded", "1", "0", "0")]


def test_a_finished_sweep_is_one_line(hydra_sweep, tmp_path, capsys) -> None:
    done_dir = tmp_path / "table"
    for run in sorted(hydra_sweep.glob("*/*-ipc1-seed0/metrics.json")):  # two finished jobs, under a grid of two
        target = done_dir / run.parent.relative_to(hydra_sweep)
        target.mkdir(parents=True)
        for name in ("config.yaml", "run.json", "metrics.json"):
            (target / name).write_text((run.parent / name).read_text())
        (target / ".hydra").mkdir()
        (target / ".hydra" / "overrides.yaml").write_text((run.parent / ".hydra" / "overrides.yaml").read_text())
    overrides = yaml.safe_load((hydra_sweep / "multirun.yaml").read_text())
    overrides["hydra"]["overrides"]["task"] = ["selector=random_real,rded", "ipc=1", "seed=0"]
    (done_dir / "multirun.yaml").write_text(yaml.safe_dump(overrides))
    assert main([str(done_dir), "--no-runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == (f"Sweep `{done_dir}`, all 2 jobs of its grid done, made by: "
                       "`python -m fgdd.run -m selector=random_real,rded ipc=1 seed=0`")
    assert out[-1].startswith("Run folders: ")
