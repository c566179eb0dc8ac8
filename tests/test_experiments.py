"""Paper tables as files: every conf/experiment protocol composes, and every experiments/<table>/README.md
command composes job by job, expands to the grid its README states, and names a published.csv that parses."""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from fgdd.config import register_resolvers, validate
from fgdd.report.published import load_published
from fgdd.report.sweep import expand
from fgdd.run import CONF_DIR

register_resolvers()
CONF = Path(CONF_DIR)
REPO = CONF.parent
EXPERIMENTS = REPO / "experiments"
PROTOCOLS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# DD-Ranking's control grids: a table's sweep, not one of RDED's protocols
CONTROL_GRIDS = {"ddranking_cifar10_ipc10", "ddranking_exact_cifar10_ipc10"}
TABLES = sorted(p.parent.name for p in EXPERIMENTS.glob("*/README.md"))

# protocol -> (dataset, input size, student = teacher architecture), as RDED's scripts and argument.py set them
EXPECTED = {
    "rded_cifar10_conv3": ("cifar10", 32, "convnet3"),
    "rded_cifar10_resnet18m": ("cifar10", 32, "resnet18_modified"),
    "rded_cifar100_conv3": ("cifar100", 32, "convnet3"),
    "rded_cifar100_resnet18m": ("cifar100", 32, "resnet18_modified"),
    "rded_imagenette_conv5": ("imagenette", 128, "convnet5"),
    "rded_imagenette_resnet18": ("imagenette", 224, "resnet18"),
    "rded_imagewoof_conv5": ("imagewoof", 128, "convnet5"),
    "rded_imagewoof_resnet18": ("imagewoof", 224, "resnet18"),
    "rded_tinyimagenet_conv4": ("tinyimagenet", 64, "convnet4"),
    "rded_tinyimagenet_resnet18m": ("tinyimagenet", 64, "resnet18_modified"),
    "rded_imagenet100_conv6": ("imagenet100", 128, "convnet6"),
    "rded_imagenet100_resnet18": ("imagenet100", 224, "resnet18"),
    "rded_imagenet1k_resnet18": ("imagenet1k", 224, "resnet18"),
}

# issue 11's CPU protocols: RDED's rules at a CPU-sized resolution (factor 1 below 128 px, 300 epochs, IPC 10)
CPU_PROTOCOLS = {
    "cpu_imagenette_conv4": ("imagenette", 64, "convnet4"),
    "cpu_imagewoof_conv4": ("imagewoof", 64, "convnet4"),
    "cpu_cifar10_conv3": ("cifar10", 32, "convnet3"),
}


def compose_run(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    validate(cfg)
    return cfg


def commands(table: str) -> dict[str, list[str]]:
    """The README's ``python -m fgdd.run -m`` and ``python -m fgdd.report`` lines (backslash continuations
    joined), as argument lists after the module name."""
    text = (EXPERIMENTS / table / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    found: dict[str, list[str]] = {}
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        tokens = shlex.split(line)
        if tokens[:3] == ["python", "-m", "fgdd.run"]:
            assert "run" not in found, f"{table}: more than one fgdd.run command"
            assert tokens[3] == "-m", f"{table}: the table command is a sweep (-m)"
            found["run"] = tokens[4:]
        elif tokens[:3] == ["python", "-m", "fgdd.report"]:
            found["report"] = tokens[3:]
    assert set(found) == {"run", "report"}, f"{table}/README.md needs one fgdd.run -m and one fgdd.report line"
    return found


def test_every_protocol_and_table_is_listed() -> None:
    assert set(PROTOCOLS) - {"demo"} - CONTROL_GRIDS == set(EXPECTED) | set(CPU_PROTOCOLS)
    assert {"rded_table2", "cross_architecture", "ablation", "hard_vs_soft", "ddranking"} <= set(TABLES)
    index = (EXPERIMENTS / "README.md").read_text()
    assert all(f"]({table}/)" in index for table in TABLES)


@pytest.mark.parametrize("protocol", sorted(EXPECTED))
def test_protocol_composes_with_rded_settings(protocol: str) -> None:
    cfg = compose_run([f"experiment={protocol}"])
    dataset, size, arch = EXPECTED[protocol]
    assert (cfg.dataset.name, cfg.dataset.input_size) == (dataset, size)
    assert cfg.model.name == cfg.teacher.arch.name == arch
    assert cfg.dataset.factor == (2 if size >= 128 else 1)  # RDED: mosaics at 128/224 px, none at 32/64
    assert cfg.selector.factor == cfg.dataset.factor
    assert (cfg.selector.num_candidates, cfg.selector.mipc, cfg.evaluator.epochs) == (5, 300, 300)
    assert cfg.evaluator.temperature == 20.0 and not cfg.evaluator.hard_labels
    assert cfg.sweep_name == protocol
    header = (CONF / "experiment" / f"{protocol}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_" and header[1].startswith("# RDED's protocol")


@pytest.mark.parametrize("protocol", sorted(CPU_PROTOCOLS))
def test_cpu_protocol_follows_rdeds_rules_below_128_px(protocol: str) -> None:
    dataset, size, arch = CPU_PROTOCOLS[protocol]
    cfg = compose_run([f"experiment={protocol}", "selector=fgdd", "teacher.checkpoint=/somewhere/teacher.pth"])
    assert (cfg.dataset.name, cfg.dataset.input_size, cfg.dataset.factor, cfg.selector.factor) == (dataset, size, 1, 1)
    assert cfg.model.name == cfg.teacher.arch.name == arch and cfg.ipc == 10
    assert (cfg.selector.num_candidates, cfg.selector.mipc, list(cfg.selector.crop_ratio)) == (5, 300, [1.0, 1.0])
    assert cfg.evaluator.epochs == 300 and cfg.evaluator.temperature == 20.0 and not cfg.evaluator.hard_labels
    assert cfg.evaluator._target_ == "fgdd.evaluation.SoftLabelEvaluator"
    assert cfg.selector.segmenter.name == "saliency" and cfg.sweep_name == protocol
    settings = [line.split("#")[0] for line in (CONF / "experiment" / f"{protocol}.yaml").read_text().splitlines()]
    assert not any("shared" in line or ".pth" in line for line in settings)  # the checkpoint path is not hard-coded
    if dataset != "imagewoof":  # the teacher is a checkpoint the command line must name
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            bare = compose(config_name="run", overrides=[f"experiment={protocol}"])
        assert OmegaConf.is_missing(bare.teacher, "checkpoint")


def test_protocol_specifics() -> None:
    cifar100 = compose_run(["experiment=rded_cifar100_conv3"])
    assert (cifar100.model.lr, cifar100.evaluator.batch_size) == (2e-3, 25)  # RDED's special case for this pair
    imagenet = compose_run(["experiment=rded_imagenet1k_resnet18"])
    assert imagenet.teacher.checkpoint.endswith("hub/checkpoints/resnet18-f37072fd.pth")  # torchvision's weights
    assert not imagenet.model.net.low_res_stem
    # a table's command line wins over the protocol's own sweep folder and student
    cfg = compose_run(["experiment=rded_imagenette_conv5", "sweep_name=cross_architecture", "model=vgg11"])
    assert (cfg.sweep_name, cfg.model.name, cfg.teacher.arch.name) == ("cross_architecture", "vgg11", "convnet5")



def test_demo_segments_with_the_saliency_model() -> None:
    cfg = compose_run(["experiment=demo", "selector=fgdd"])  # README's CPU segmenter, not the teacher's CAM
    assert (cfg.selector.segmenter.name, cfg.selector.threshold.name, cfg.sweep_name) == ("saliency", "quantile", "demo")
    assert compose_run(["experiment=demo", "selector=fgdd", "segmenter=cam"]).selector.segmenter.name == "cam"


@pytest.mark.parametrize("table", TABLES)
def test_readme_command_composes_job_by_job(table: str) -> None:
    overrides = commands(table)["run"]
    cells, swept = expand(overrides)
    assert swept, f"{table}: the command sweeps nothing"
    first = cells[0]
    compose_run(first)
    # every value of every swept key, the other keys at their first value: each names a real file or key
    for parsed in OverridesParser.create().parse_overrides(overrides):
        if not parsed.is_sweep_override():
            continue
        key = parsed.get_key_element()
        for value in list(parsed.sweep_string_iterator())[1:]:
            job = [f"{key}={value}" if o.split("=", 1)[0] == key else o for o in first]
            if key == "experiment":
                assert (CONF / "experiment" / f"{value}.yaml").exists()
            compose_run(job)


@pytest.mark.parametrize("table", TABLES)
def test_readme_states_the_grid_and_reports_the_sweep(table: str) -> None:
    found = commands(table)
    cells, _ = expand(found["run"])
    readme = (EXPERIMENTS / table / "README.md").read_text()
    stated = re.search(r"\*\*(\d+) jobs\*\*", readme)
    assert stated and int(stated.group(1)) == len(cells)
    index = (EXPERIMENTS / "README.md").read_text()
    assert re.search(rf"\]\({table}/\) \|[^\n]*\| {len(cells)} \|", index), "experiments/README.md job count"
    sweep_name = next(o.split("=", 1)[1] for o in found["run"] if o.startswith("sweep_name="))
    report = found["report"]
    assert report[0] == f"outputs/sweeps/{sweep_name}"
    assert report[report.index("--published") + 1] == f"experiments/{table}/published.csv"
    assert report[report.index("--csv") + 1] == f"experiments/{table}/results.csv"


@pytest.mark.parametrize("table", TABLES)
def test_published_numbers_parse_and_match_the_readme(table: str) -> None:
    published = load_published(EXPERIMENTS / table / "published.csv")
    assert published
    readme = (EXPERIMENTS / table / "README.md").read_text()
    datasets = {key[0] for key in published}
    for (dataset, student, ipc, method, evaluator), entry in published.items():
        assert evaluator in ("soft-label", "hard-label") and entry.source
        if entry.top1 is not None:
            assert f"{100 * entry.top1:.1f}" in readme, f"{table}: {dataset} {student} {ipc} {method} not in README"
        if method == "fgdd":  # the paper's numbers are not public: rows present, empty
            assert entry.top1 is None
    assert datasets <= {v[0] for v in EXPECTED.values()}


def test_table2_holds_rdeds_published_numbers() -> None:
    published = load_published(EXPERIMENTS / "rded_table2" / "published.csv")
    rded = {(d, s, i): e.top1 for (d, s, i, m, _), e in published.items() if m == "rded"}
    assert len(rded) == 13 * 3
    assert rded[("cifar10", "convnet3", 10)] == pytest.approx(0.502)
    assert rded[("imagenet1k", "resnet18", 50)] == pytest.approx(0.565)
    assert rded[("tinyimagenet", "resnet18_modified", 1)] == pytest.approx(0.097)
    assert rded[("imagenet100", "resnet18", 10)] is None  # not transcribed yet
    known = [v for v in rded.values() if v is not None]
    assert len(known) == 11 * 3 and math.isclose(sum(known), 14.26, abs_tol=1e-6)  # sum of method.md's 33 numbers
    # every (dataset, student) of Table 2 is a protocol of the sweep
    protocols = {(d, a) for d, _, a in EXPECTED.values()}
    assert {(d, s) for d, s, _ in rded} == protocols


def test_ablation_published_labels_name_real_jobs() -> None:
    """published.csv rows given by full method label must be labels that jobs of the ablation really get."""
    from fgdd.report.collect import method_label

    published = load_published(EXPERIMENTS / "ablation" / "published.csv")
    labels = {key[3] for key in published if "(" in key[3]}
    cells, _ = expand(commands("ablation")["run"])
    made = set()
    for cell in cells:
        if "seed=0" in cell and "threshold=never" in cell:
            made.add(method_label(OmegaConf.to_container(compose_run(cell).selector, resolve=True)))
    assert labels == made and len(made) == 4  # 2 segmenters x 2 resize targets


def test_ddranking_grid_is_the_experiments_own_and_every_control_composes() -> None:
    """experiment=ddranking_cifar10_ipc10 carries its grid as sweeper params (so the experiment alone runs it), the
    same grid as the README's command; every evaluator of it composes with the CIFAR-10 protocol."""
    import yaml

    text = (CONF / "experiment" / "ddranking_cifar10_ipc10.yaml").read_text()
    params = yaml.safe_load(text)["hydra"]["sweeper"]["params"]
    cells, swept = expand([f"{k}={v}" for k, v in params.items()])
    assert len(cells) == 60 and swept == ["selector", "evaluator", "seed"]
    readme_cells, _ = expand(commands("ddranking")["run"])
    assert sorted(map(sorted, (c for c in readme_cells))) == sorted(
        sorted([*c, "experiment=ddranking_cifar10_ipc10", "sweep_name=ddranking_cifar10_ipc10"]) for c in cells)
    for evaluator in params["evaluator"].split(","):
        cfg = compose_run(["experiment=ddranking_cifar10_ipc10", f"evaluator={evaluator}"])
        assert (cfg.dataset.name, cfg.ipc, cfg.model.name, cfg.teacher.arch.name) == ("cifar10", 10, "convnet3",
                                                                                       "convnet3")
        inner = cfg.evaluator.get("inner") or cfg.evaluator
        assert inner.epochs == (200 if evaluator == "full_real" else 300)


def test_ddranking_exact_protocol_pins_each_ddranking_setting() -> None:
    """experiment=ddranking_exact_cifar10_ipc10: DD-Ranking's protocol as its code runs it (soft_label.py,
    train_and_eval.py), one setting per line of the issue; fgdd's own protocol stays the default."""
    import yaml

    params = yaml.safe_load((CONF / "experiment" / "ddranking_exact_cifar10_ipc10.yaml").read_text())["hydra"][
        "sweeper"]["params"]
    cells, _ = expand([f"{k}={v}" for k, v in params.items()])
    assert len(cells) == 60 and params["seed"] == "0,1,42,1234,3407"  # DD-Ranking's seed list: a new draw per round
    grid = "ddranking_rded,ddranking_soft_noaug,ddranking_hard_lr_search,ddranking_full_real"
    assert params["evaluator"] == grid and params["selector"] == "random_real,rded,fgdd"

    def evaluator(name: str, selector: str = "rded"):
        cfg = compose_run(["experiment=ddranking_exact_cifar10_ipc10", f"evaluator={name}", f"selector={selector}"])
        assert (cfg.dataset.name, cfg.ipc, cfg.model.name) == ("cifar10", 10, "convnet3")
        return cfg.evaluator

    for name in ("ddranking_rded", "ddranking_soft_noaug", "ddranking_hard_lr_search", "ddranking_full_real"):
        ev = evaluator(name)
        assert ev.protocol == "ddranking" and ev.epochs == ev.inner.epochs == 300  # num_epochs
        assert (ev.inner.eval_every, ev.inner.tail_fraction) == (20, 1.0)  # test_interval 20, from the first epoch
    for name, (augment, cutmix) in {"ddranking_rded": (True, True), "ddranking_soft_noaug": (False, False)}.items():
        ev = evaluator(name, "random_real")
        assert (ev.select_on, ev.select_metric, list(ev.lrs)) == ("test", "student/top1_best_tail",
                                                                  [0.001, 0.005, 0.01, 0.05, 0.1])
        assert list(ev.search_selectors) == ["random_real"] and ev.selector == "random_real"  # random set searched
        assert (ev.inner.augment, ev.inner.cutmix, ev.inner.hard_labels) == (augment, cutmix, False)
        assert instantiate_evaluator(evaluator(name, "rded")).search is False  # a method keeps its own rate
    hard = evaluator("ddranking_hard_lr_search")
    assert (hard.select_on, hard.select_metric, hard.get("search_selectors")) == ("test", "student/top1_best_tail",
                                                                                  None)
    assert (hard.inner.hard_labels, hard.inner.augment, hard.inner.cutmix) == (True, True, False)  # flips, no CutMix
    real = evaluator("ddranking_full_real").inner
    assert (real.optimizer, evaluator("ddranking_full_real").lr, real.momentum, real.weight_decay) == (
        "sgd", 0.01, 0.9, 0.0005)
    assert (real.lr_step, real.batch_size, real.augment, real.cutmix) == (100, 256, False, False)
    default = compose_run(["evaluator=hard_lr_search"]).evaluator  # fgdd's own protocol is unchanged
    assert (default.select_on, default.get("protocol", "fgdd")) == ("holdout", "fgdd")


def instantiate_evaluator(node):
    from hydra.utils import instantiate

    return instantiate(node, _convert_="all")


def test_ddranking_step_schedule_divides_the_rate_by_ten_every_100_epochs() -> None:
    import torch

    from fgdd.evaluation.optim import configure

    model = torch.nn.Linear(2, 2)
    parts = configure(model, optimizer="sgd", lr=0.01, weight_decay=5e-4, momentum=0.9, epochs=300, lr_step=100)
    optimizer, scheduler = parts["optimizer"], parts["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["weight_decay"] == 5e-4
    rates = []
    for _ in range(300):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [rates[0], rates[99], rates[100], rates[200], rates[299]] == pytest.approx([0.01, 0.01, 1e-3, 1e-4, 1e-4])
