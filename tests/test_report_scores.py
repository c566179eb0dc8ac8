"""DD-Ranking's scores from a hand-written sweep folder: IOR, HLR, LRS and ARS against values computed by hand,
the controls told apart by their evaluator, a missing control listed with the command that runs it (and that
command composing), the figures written."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from hydra import compose, initialize_config_dir

from fgdd.report.__main__ import main
from fgdd.report.collect import evaluator_label, find_runs, load_row
from fgdd.report.scores import (
    FULL_REAL,
    HARD_SEARCH,
    SOFT_AUG,
    SOFT_NOAUG,
    annotate,
    augmentation_robust_score,
    compute_scores,
    control_of,
    label_robust_score,
    missing_controls,
    normalised,
)
from fgdd.run import CONF_DIR

E = 300
SOFT = {"_target_": "fgdd.evaluation.SoftLabelEvaluator", "hard_labels": False, "epochs": E}
NOAUG = {**SOFT, "augment": False, "cutmix": False}
HARD = {"_target_": "fgdd.evaluation.SoftLabelEvaluator", "hard_labels": True, "epochs": E, "augment": False,
        "cutmix": False}
SEARCH = {"_target_": "fgdd.evaluation.lr_search.LRSearchEvaluator", "select_on": "holdout", "epochs": E,
          "lrs": [0.01, 0.05], "inner": HARD}
FULL = {"_target_": "fgdd.evaluation.full_real.FullRealEvaluator", "epochs": 2, "inner": {**HARD, "epochs": 2}}
FGDD = {"name": "fgdd", "segmenter": {"name": "cam"}, "threshold": {"_target_": "x", "name": "quantile", "q": 0.7},
        "resize_to": "cell", "compete": True}
EVALUATOR_NAME = {id(SOFT): "rded", id(NOAUG): "soft_noaug", id(SEARCH): "hard_lr_search", id(FULL): "full_real"}


def fake_run(root, name: str, selector: dict, evaluator: dict, seed: int, top1: float | None, **metrics) -> None:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = {"dataset": {"name": "cifar10"}, "selector": selector, "model": {"name": "convnet3"},
           "teacher": {"arch": {"name": "convnet3"}, "checkpoint": None}, "evaluator": evaluator, "ipc": 10,
           "seed": seed, "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger"}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "run.json").write_text("{}")
    overrides = ["experiment=ddranking_cifar10_ipc10", f"selector={selector['name']}"]
    if selector["name"] == "fgdd":
        overrides.append("segmenter=cam")
    overrides.append(f"evaluator={EVALUATOR_NAME[id(evaluator)]}")
    if evaluator is SEARCH:
        overrides.append("evaluator.lrs=[0.01,0.05]")
    overrides += [f"seed={seed}", "sweep_name=table"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if top1 is not None:
        (run / "metrics.json").write_text(json.dumps({"student/top1_final": top1, "teacher/val_top1": 0.8,
                                                      **metrics}))


RANDOM, RDED = {"name": "random_real"}, {"name": "rded"}


@pytest.fixture
def sweep(tmp_path):
    """Seeds 0 and 1; the reference ran for seed 0 only (once per selector, from the cache: the same value);
    fgdd lacks its no-aug control, its seed-1 recipe run and its seed-1 hard-label run."""
    root = tmp_path / "sweep"
    runs = [
        ("r-aug-0", RANDOM, SOFT, 0, 0.40), ("r-aug-1", RANDOM, SOFT, 1, 0.42),
        ("r-noaug-0", RANDOM, NOAUG, 0, 0.20), ("r-noaug-1", RANDOM, NOAUG, 1, 0.22),
        ("d-aug-0", RDED, SOFT, 0, 0.50), ("d-aug-1", RDED, SOFT, 1, 0.46),
        ("d-noaug-0", RDED, NOAUG, 0, 0.25), ("d-noaug-1", RDED, NOAUG, 1, 0.30),
        ("f-aug-0", FGDD, SOFT, 0, 0.55), ("f-hard-0", FGDD, SEARCH, 0, 0.32),
        ("ref-r-0", RANDOM, FULL, 0, 0.80), ("ref-d-0", RDED, FULL, 0, 0.80),
    ]
    for name, selector, evaluator, seed, top1 in runs:
        fake_run(root, name, selector, evaluator, seed, top1)
    fake_run(root, "d-hard-0", RDED, SEARCH, 0, 0.30, **{"lr_search/lr": 0.01})
    fake_run(root, "d-hard-1", RDED, SEARCH, 1, 0.28, **{"lr_search/lr": 0.05})
    return root


def entries_of(root):
    rows = annotate([load_row(r) for r in find_runs(root)])
    return {e["method"]: e for e in compute_scores(rows)}, rows


def test_normalisation_and_the_two_scores_by_hand() -> None:
    # (e^x - e^-1) / (e - e^-1): 0 at x = -1, 1 at x = 1, 0.2689 at 0
    assert normalised(-1.0) == pytest.approx(0.0) and normalised(1.0) == pytest.approx(1.0)
    assert normalised(0.0) == pytest.approx(0.26894142, abs=1e-8)
    # LRS: alpha = 0.5 * 0.10 - 0.5 * 0.50 = -0.20 -> (0.8187308 - 0.3678794) / 2.3504024 = 0.1918188
    assert label_robust_score(0.10, 0.50) == pytest.approx(0.19181878, abs=1e-8)
    assert label_robust_score(0.10, 0.50, w=1.0) == pytest.approx(normalised(0.10))
    # ARS: beta = 0.5 * 0.10 + 0.5 * 0.05 = 0.075 -> 0.3020779
    assert augmentation_robust_score(0.10, 0.05) == pytest.approx(0.30207794, abs=1e-8)


def test_controls_are_told_apart_by_the_evaluator() -> None:
    assert [control_of(c) for c in (SOFT, NOAUG, SEARCH, FULL)] == [SOFT_AUG, SOFT_NOAUG, HARD_SEARCH, FULL_REAL]
    assert control_of({**SOFT, "cutmix": False}) is None  # half the augmentation is no control of DD-Ranking's
    assert control_of({**SOFT, "soft_labels": "stored"}) is None
    assert control_of(HARD) is None  # hard labels without the lr search
    assert control_of(None) is None
    assert evaluator_label(NOAUG) == "soft-label (no aug)"
    assert evaluator_label(SEARCH) == "hard-label (no aug), lr search on holdout"
    assert evaluator_label(FULL) == "full-real reference (hard-label (no aug))"


def test_scores_against_hand_computed_values(sweep) -> None:
    entries, _ = entries_of(sweep)
    rded = entries["rded"]
    # IOR per seed: 0.50 - 0.40 = 0.10, 0.46 - 0.42 = 0.04 -> mean 0.07, sample std 0.0424264
    assert rded["IOR"]["per_seed"] == pytest.approx({0: 0.10, 1: 0.04})
    assert (rded["IOR"]["mean"], rded["IOR"]["std"]) == pytest.approx((0.07, 0.04242641), abs=1e-7)
    # HLR: the reference (seed 0 only, 0.80) pairs with seed 0 and, as the mean of its seeds, stands for seed 1:
    # 0.80 - 0.30 = 0.50, 0.80 - 0.28 = 0.52
    assert rded["HLR"]["per_seed"] == pytest.approx({0: 0.50, 1: 0.52})
    # LRS per seed: alpha = -0.20 -> 0.19181878; alpha = 0.5 * 0.04 - 0.5 * 0.52 = -0.24 -> 0.17816031
    assert rded["LRS"]["per_seed"] == pytest.approx({0: 0.19181878, 1: 0.17816031}, abs=1e-8)
    assert (rded["LRS"]["mean"], rded["LRS"]["std"]) == pytest.approx((0.18498954, 0.00965799), abs=1e-8)
    # ARS per seed: beta = 0.5 * 0.10 + 0.5 * (0.25 - 0.20) = 0.075 -> 0.30207794;
    #               beta = 0.5 * 0.04 + 0.5 * (0.30 - 0.22) = 0.06  -> 0.29525034
    assert rded["ARS"]["per_seed"] == pytest.approx({0: 0.30207794, 1: 0.29525034}, abs=1e-8)
    assert rded["chosen_lr"] == {0: 0.01, 1: 0.05}
    fgdd = entries["fgdd(cam, quantile 0.7)"]
    # one seed where IOR and HLR both exist: IOR 0.15, HLR 0.48, LRS(alpha = -0.165) = 0.20422642; no ARS
    assert fgdd["IOR"]["per_seed"] == pytest.approx({0: 0.15})
    assert fgdd["HLR"]["per_seed"] == pytest.approx({0: 0.48})
    assert fgdd["LRS"]["mean"] == pytest.approx(0.20422642, abs=1e-8) and fgdd["LRS"]["std"] == 0.0
    assert fgdd["ARS"]["mean"] is None and fgdd["ARS"]["seeds"] == []
    random = entries["random_real"]
    assert random["IOR"]["per_seed"] == {0: 0.0, 1: 0.0}  # by definition
    assert random["HLR"]["mean"] is None  # its hard-label control did not run: no HLR, no LRS
    assert rded["reference"]["per_seed"] == {0: 0.80} and rded["reference"]["epochs"] == [2]


def test_a_pending_run_is_not_a_score(sweep) -> None:
    fake_run(sweep, "f-noaug-0", FGDD, NOAUG, 0, None)  # started, no metrics yet
    entries, _ = entries_of(sweep)
    assert entries["fgdd(cam, quantile 0.7)"]["ARS"]["seeds"] == []


def compose_overrides(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


def test_missing_controls_are_listed_with_a_command_that_composes(sweep) -> None:
    entries, _ = entries_of(sweep)
    missing = {(m["method"], m["control"]): m for m in missing_controls(list(entries.values()), sweep)}
    fgdd = "fgdd(cam, quantile 0.7)"
    assert set(missing) == {(fgdd, SOFT_AUG), (fgdd, SOFT_NOAUG), (fgdd, HARD_SEARCH)}
    assert missing[(fgdd, SOFT_AUG)]["seeds"] == [1] and missing[(fgdd, SOFT_NOAUG)]["seeds"] == [0, 1]
    hard = missing[(fgdd, HARD_SEARCH)]["command"]
    assert hard.startswith("python -m fgdd.run -m experiment=ddranking_cifar10_ipc10 selector=fgdd segmenter=cam "
                           "evaluator=hard_lr_search 'evaluator.lrs=[0.01,0.05]' seed=1 hydra.sweep.dir=")
    assert f"{sweep}/controls/" in hard and "sweep_name" not in hard
    noaug = missing[(fgdd, SOFT_NOAUG)]["command"]
    assert " evaluator=soft_noaug seed=0,1 " in noaug
    # every command is a real one: its overrides compose (one job of it) with the repository's configs
    for item in missing.values():
        args = item["command"].split(" fgdd.run -m ", 1)[1]
        job = [a if not a.startswith("seed=") else f"seed={item['seeds'][0]}" for a in shlex.split(args)
               if not a.startswith("hydra.")]
        cfg = compose_overrides([*job, f"data_root={sweep}"])
        assert cfg.evaluator._target_.endswith({SOFT_AUG: "SoftLabelEvaluator", SOFT_NOAUG: "SoftLabelEvaluator",
                                                HARD_SEARCH: "LRSearchEvaluator"}[item["control"]])


def test_a_missing_reference_is_listed_once_with_its_command(sweep, capsys) -> None:
    for name in ("ref-r-0", "ref-d-0"):
        for path in sorted((sweep / name).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (sweep / name).rmdir()
    entries, _ = entries_of(sweep)
    assert entries["rded"]["HLR"]["mean"] is None and entries["rded"]["LRS"]["seeds"] == []
    references = [m for m in missing_controls(list(entries.values()), sweep) if m["control"] == FULL_REAL]
    assert len(references) == 1
    assert " selector=random_real evaluator=full_real seed=0 hydra.sweep.dir=" in references[0]["command"]
    assert main([str(sweep), "--no-runs"]) == 0
    out = capsys.readouterr().out
    assert "## DD-Ranking scores (student/top1_final)" in out
    assert "Missing controls (4)" in out and "evaluator=full_real" in out


def test_report_prints_the_scores_table(sweep, capsys) -> None:
    assert main([str(sweep), "--no-runs"]) == 0
    out = capsys.readouterr().out
    # rded: IOR +7.0 +- 4.2 points, HLR +51.0 +- 1.4, LRS 18.5 +- 1.0 %, ARS 29.9 +- 0.5 %, two seeds each
    assert ("| cifar10 | convnet3 | convnet3 | 10 | 300 | rded | +7.0 +- 4.2 | +51.0 +- 1.4 | 18.5 +- 1.0 | "
            "29.9 +- 0.5 | 2/2/2/2 | 48.0 | 27.5 | 29.0 | 0.01, 0.05 (on holdout) |") in out
    assert "Full-real reference, cifar10 / convnet3: 80.0 % (seeds 0; 2 epochs)" in out
    assert "Missing controls (3)" in out


def test_report_rejects_a_weight_outside_0_1(sweep, capsys) -> None:
    assert main([str(sweep), "--lrs-weight", "1.5"]) == 2
    assert "in [0, 1]" in capsys.readouterr().err


def test_figures_are_written(sweep, tmp_path, capsys) -> None:
    # a second IPC so that accuracy against IPC has a line to draw
    fake_run(sweep, "d-aug-50", RDED, SOFT, 0, 0.60)
    config = yaml.safe_load((sweep / "d-aug-50" / "config.yaml").read_text())
    (sweep / "d-aug-50" / "config.yaml").write_text(yaml.safe_dump({**config, "ipc": 50}))
    out = tmp_path / "figures"
    assert main([str(sweep), "--no-runs", "--figures", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"accuracy_vs_ipc.png", "grid_accuracy.png", "ior_hlr.png"}
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    last = capsys.readouterr().out.splitlines()[-1]  # one line says where everything is
    assert last.startswith(f"Run folders: {sweep}/* (each with config.yaml, metrics.json, figures/)")
    assert last.endswith(f"this report's figures: {out}/ (accuracy_vs_ipc.png, grid_accuracy.png, ior_hlr.png).")


def test_controls_are_listed_only_when_the_runs_hold_one_or_when_asked(tmp_path, capsys) -> None:
    plain = tmp_path / "plain"  # every run is the method's own recipe: no control beyond it
    for name, selector, seed, top1 in (("r0", RANDOM, 0, 0.40), ("d0", RDED, 0, 0.50), ("d1", RDED, 1, 0.46)):
        fake_run(plain, name, selector, SOFT, seed, top1)
    assert main([str(plain), "--no-runs"]) == 0
    out = capsys.readouterr().out
    assert "DD-Ranking" not in out and "Missing controls" not in out and "evaluator=" not in out
    assert out.splitlines()[-2].startswith("| cifar10 | convnet3 | convnet3 | 10 | rded | soft-label | 48.0 +- 2.8 |")
    assert out.splitlines()[-1].startswith(f"Run folders: {plain}/*")  # the table, then where the runs are
    assert main([str(plain), "--no-runs", "--controls"]) == 0
    out = capsys.readouterr().out
    assert "## DD-Ranking scores (student/top1_final)" in out and "| rded | +10.0 +- 0.0 |" in out  # IOR, seed 0
    # no-aug for both, rded's lr search, random_real's seed 1, the reference
    assert "Missing controls (5)" in out and "evaluator=soft_noaug" in out


def test_controls_held_by_the_runs_can_be_left_out(sweep, capsys) -> None:
    assert main([str(sweep), "--no-runs", "--no-controls"]) == 0
    out = capsys.readouterr().out
    assert "DD-Ranking" not in out and "Missing controls" not in out
    assert "| rded | soft-label (no aug) | 27.5 +- 3.5 | 2 |" in out  # the control runs stay in the table


def test_figures_go_to_wandb_when_the_runs_did(sweep, tmp_path, monkeypatch) -> None:
    import sys
    import types

    logged: dict = {}

    class FakeRun:
        def log(self, data):
            logged.update(data)

        def finish(self):
            logged["finished"] = True

    fake = types.SimpleNamespace(init=lambda **kw: logged.update(init=kw) or FakeRun(), Image=lambda path: path)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    for config_path in sweep.rglob("config.yaml"):
        config = yaml.safe_load(config_path.read_text())
        config["logger"] = {"_target_": "lightning.pytorch.loggers.WandbLogger", "project": "p", "entity": None,
                            "group": None, "mode": "offline"}
        config_path.write_text(yaml.safe_dump(config))
    assert main([str(sweep), "--no-runs", "--figures", str(tmp_path / "f")]) == 0
    assert logged["init"]["project"] == "p" and logged["init"]["job_type"] == "report"
    assert {"report/grid_accuracy", "report/ior_hlr"} <= set(logged) and logged["finished"]
    assert logged["init"]["group"] == "sweep"  # the sweep folder's name, as the runs' W&B group


def test_a_missing_control_inside_a_sweeps_grid_gets_that_sweeps_command(sweep) -> None:
    from fgdd.report.sweep import find_grids

    command = ["experiment=ddranking_cifar10_ipc10", "segmenter=cam", "selector=random_real,rded,fgdd",
               "evaluator=rded,soft_noaug", "seed=0,1", "sweep_name=table"]
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": command}}}))
    entries, _ = entries_of(sweep)
    missing = {(m["method"], m["control"]): m for m in missing_controls(list(entries.values()), sweep,
                                                                          find_grids(sweep))}
    fgdd = "fgdd(cam, quantile 0.7)"
    # fgdd's soft-label jobs are in the grid: rerun the sweep's command; its lr search is not: a command of its own
    assert missing[(fgdd, SOFT_NOAUG)]["command"] == "python -m fgdd.run -m " + shlex.join(command)
    assert missing[(fgdd, SOFT_AUG)]["sweep"] is not None
    assert missing[(fgdd, HARD_SEARCH)]["sweep"] is None and "hydra.sweep.dir=" in missing[(fgdd, HARD_SEARCH)][
        "command"]


def test_an_unfinished_reference_is_pending_not_missing(sweep) -> None:
    for name in ("ref-r-0", "ref-d-0"):
        (sweep / name / "metrics.json").unlink()  # both reference runs still going
    entries, _ = entries_of(sweep)
    assert entries["rded"]["reference"] is None and entries["rded"]["reference_pending"]
    assert not [m for m in missing_controls(list(entries.values()), sweep) if m["control"] == FULL_REAL]


def test_a_reference_measured_elsewhere_can_be_given(sweep, capsys) -> None:
    for name in ("ref-r-0", "ref-d-0"):
        (sweep / name / "metrics.json").unlink()
        (sweep / name / "config.yaml").unlink()  # no reference run at all
    assert main([str(sweep), "--no-runs", "--reference", "cifar10:convnet3=80"]) == 0  # percent or fraction
    out = capsys.readouterr().out
    assert "| rded | +7.0 +- 4.2 | +51.0 +- 1.4 | 18.5 +- 1.0 |" in out  # the same HLR as the 0.80 run gave
    assert "80.0 %, given with --reference" in out and "Missing controls (3)" in out  # no reference to run
    assert main([str(sweep), "--reference", "cifar10=0.8"]) == 2
    assert "DATASET:STUDENT=ACCURACY" in capsys.readouterr().err


def test_an_lr_chosen_on_the_holdout_wins_over_one_chosen_on_the_test_set(sweep, capsys) -> None:
    on_test = {**SEARCH, "select_on": "test"}
    EVALUATOR_NAME[id(on_test)] = "hard_lr_search"
    fake_run(sweep, "d-hard-test-0", RDED, on_test, 0, 0.99, **{"lr_search/lr": 0.1})
    entries, _ = entries_of(sweep)
    assert entries["rded"]["accuracy"][HARD_SEARCH]["per_seed"] == {0: 0.30, 1: 0.28}
    fake_run(sweep, "f-hard-test-1", FGDD, on_test, 1, 0.30, **{"lr_search/lr": 0.1})
    assert main([str(sweep), "--no-runs"]) == 0
    assert "| 0.1 (on holdout, test) |" in capsys.readouterr().out  # fgdd: seed 0 on the holdout, seed 1 on test


# DD-Ranking's exact protocol (conf/evaluator/ddranking_*.yaml): every control a wrapper labelled protocol=ddranking
X_SOFT = {"_target_": "fgdd.evaluation.lr_search.LRSearchEvaluator", "protocol": "ddranking", "select_on": "test",
          "epochs": E, "search_selectors": ["random_real"], "inner": SOFT}
X_NOAUG = {**X_SOFT, "inner": NOAUG}
X_HARD = {**SEARCH, "protocol": "ddranking", "select_on": "test", "inner": {**HARD, "augment": True}}
X_FULL = {**FULL, "protocol": "ddranking", "epochs": E, "inner": {**HARD, "epochs": E, "optimizer": "sgd"}}
EVALUATOR_NAME |= {id(X_SOFT): "ddranking_rded", id(X_NOAUG): "ddranking_soft_noaug",
                   id(X_HARD): "ddranking_hard_lr_search", id(X_FULL): "ddranking_full_real"}


def test_ddranking_protocol_rows_are_grouped_apart_with_population_std_and_the_hard_variant(sweep, capsys) -> None:
    assert [control_of(c) for c in (X_SOFT, X_NOAUG, X_HARD, X_FULL)] == [SOFT_AUG, SOFT_NOAUG, HARD_SEARCH,
                                                                          FULL_REAL]
    runs = [("xr-aug", RANDOM, X_SOFT, (0.40, 0.44)), ("xd-aug", RDED, X_SOFT, (0.50, 0.46)),
            ("xr-hard", RANDOM, X_HARD, (0.20, 0.22)), ("xd-hard", RDED, X_HARD, (0.30, 0.28)),
            ("xr-noaug", RANDOM, X_NOAUG, (0.2, 0.2))]
    for name, selector, evaluator, tops in runs:
        for seed, top1 in enumerate(tops):
            fake_run(sweep, f"{name}-{seed}", selector, evaluator, seed, top1)
    fake_run(sweep, "xref-0", RANDOM, X_FULL, 0, 0.70)
    rows = annotate([load_row(r) for r in find_runs(sweep)])
    entries = {(e["method"], e["protocol"]): e for e in compute_scores(rows)}
    exact, own = entries[("rded", "ddranking")], entries[("rded", "fgdd")]
    assert own["IOR"]["per_seed"] == pytest.approx({0: 0.10, 1: 0.04}) and own["std"] == "sample"  # unchanged
    # IOR 0.10, 0.02 -> mean 0.06, population std 0.04 (the sample std would be 0.0566)
    assert exact["IOR"]["per_seed"] == pytest.approx({0: 0.10, 1: 0.02}) and exact["std"] == "population"
    assert (exact["IOR"]["mean"], exact["IOR"]["std"]) == pytest.approx((0.06, 0.04))
    # its own reference (0.70, SGD), not fgdd's (0.80): HLR 0.70 - 0.30, 0.70 - 0.28
    assert exact["HLR"]["per_seed"] == pytest.approx({0: 0.40, 1: 0.42})
    # LabelRobustScoreHard: IOR on hard labels 0.30 - 0.20, 0.28 - 0.22; LRS from it and the same HLR
    assert exact["IOR_hard"]["per_seed"] == pytest.approx({0: 0.10, 1: 0.06})
    assert exact["LRS_hard"]["per_seed"] == pytest.approx({0: label_robust_score(0.10, 0.40),
                                                           1: label_robust_score(0.06, 0.42)})
    assert own["IOR_hard"]["mean"] is None  # fgdd's grid ran no random hard-label control
    missing = missing_controls(list(entries.values()), sweep)
    exact_missing = {m["control"]: m for m in missing if m["group"]["protocol"] == "ddranking" and m["method"] == "rded"}
    assert " evaluator=ddranking_soft_noaug " in exact_missing[SOFT_NOAUG]["command"]
    assert main([str(sweep), "--no-runs"]) == 0
    out = capsys.readouterr().out
    assert "| rded [ddranking] | +6.0 +- 4.0 |" in out and "population std" in out
    assert "Full-real reference, cifar10 / convnet3 [ddranking]: 70.0 %" in out
    assert "Hard-label variant (DD-Ranking's `LabelRobustScoreHard`)" in out and "| rded [ddranking] | +8.0 +- 2.0 |" in out


def test_protocol_and_external_sets_are_labelled_in_the_runs_table() -> None:
    from fgdd.report.collect import method_label

    assert evaluator_label(X_SOFT) == "soft-label, lr search on test [ddranking]"
    assert evaluator_label(X_FULL) == "full-real reference (hard-label (no aug)) [ddranking]"
    assert method_label({"name": "folder", "path": "/sets/my_method"}) == "folder(my_method)"  # two sets never merge
