"""Every YAML in every config group composes and instantiates; unknown keys and bad values are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from fgdd.config import compose_checked, register_resolvers, validate
from fgdd.errors import ConfigError
from fgdd.run import CONF_DIR

register_resolvers()
CONF = Path(CONF_DIR)
GROUPS = ["dataset", "model", "teacher", "selector", "segmenter", "threshold", "evaluator", "logger", "trainer",
          "experiment", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_run(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="run", overrides=list(overrides))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group: str, option: str, tmp_path) -> None:
    overrides = [f"{group}={option}", f"data_root={tmp_path}"]
    if group == "teacher" and option == "checkpoint":
        overrides.append("teacher.checkpoint=/nonexistent.pth")
    if group == "segmenter" and option == "mask_folder":
        overrides.append(f"segmenter.root={tmp_path}")
    if group == "dataset" and option == "imagefolder":  # the generic folder dataset has no classes of its own
        overrides += ["dataset.subdir=mine", "dataset.classes=[a,b]"]
    if group == "selector" and option == "folder":  # an external set: one class folder with one image will do
        (tmp_path / "set" / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "set" / "a" / "0.png")
        overrides += [f"selector.path={tmp_path / 'set'}", "ipc=1"]
    if group == "model":  # 128 px fits every architecture, the deepest ConvNet included
        overrides.append("dataset=imagenette")
    cfg = compose_run(*overrides)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    validate(cfg)
    if group in ("dataset", "selector", "segmenter", "threshold", "evaluator"):
        instantiate(cfg[group], _convert_="all")
    if group == "model":
        instantiate(cfg.model.net, num_classes=10, input_size=cfg.dataset.input_size)
    if group == "logger" and cfg.logger is not None:
        assert instantiate(cfg.logger, save_dir=str(tmp_path)).save_dir == str(tmp_path)


def test_teacher_arch_is_chosen_separately_from_the_student() -> None:
    cfg = compose_run("model=resnet18_modified", "model@teacher.arch=convnet")
    assert cfg.model.name == "resnet18_modified"
    assert cfg.teacher.arch.name == "convnet"


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigCompositionException, match="ipcc"):
        compose_run("ipcc=10")
    with pytest.raises(ConfigCompositionException, match="num_candidatez"):
        compose_run("selector.num_candidatez=3")


def test_unknown_group_option_is_an_error() -> None:
    with pytest.raises(ConfigCompositionException, match="nosuchset"):
        compose_run("dataset=nosuchset")


@pytest.mark.parametrize("override,message", [("ipc=ten", "ipc must be an integer"), ("ipc=0", "at least 1"),
                                              ("seed=1.5", "seed must be an integer")])
def test_wrong_types_are_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(compose_run(override))


@pytest.mark.parametrize("override, meant", [
    ("selctor=rded", "did you mean selector? (`selector=rded`)"),
    ("+selctor=rded", "did you mean selector? (`selector=rded`)"),
    ("++selctor=rded", "did you mean selector? (`selector=rded`)"),
    ("+selctor.mipc=20", "did you mean selector? (`selector.mipc=20`)"),
    ("++selector.num_candidatez=3", "did you mean num_candidates? (`selector.num_candidates=3`)"),
    ("+trainer.max_epoc=3", "did you mean max_epochs? (`+trainer.max_epochs=3`)"),  # a Trainer argument, added
])
def test_a_typo_is_refused_whatever_its_prefix_with_the_key_meant(override: str, meant: str) -> None:
    with pytest.raises(ConfigError) as error:
        compose_checked([override])
    assert meant in str(error.value) and "To append" not in str(error.value)


def test_plus_adds_only_what_fgdd_reads() -> None:
    cfg = compose_checked(["+trainer.max_time=00:00:10:00", "++ipc=3"])  # a Trainer argument; a key that exists
    assert cfg.trainer.max_time == "00:00:10:00" and cfg.ipc == 3
    with pytest.raises(ConfigError, match="the keys at the top level are ipc, seed, device"):
        compose_checked(["+banana=1"])  # nothing close: the keys that exist


@pytest.mark.parametrize("overrides, message", [
    (["evaluator.pipeline=fast"], "Invalid value 'fast', expected one of [batched, loader]"),
    (["evaluator=holdout", "evaluator.inner.precision=fp16"], "expected one of [auto, fp32, bf16]"),
    (["evaluator=hard_lr_search", "evaluator.inner.optimizer=adam"], "expected one of [adamw, sgd]"),
    (["evaluator.compile=eager"], "expected one of [default, reduce-overhead, max-autotune]"),
    (["evaluator.soft_labels=cached"], "expected one of [online, stored]"),
    (["evaluator.epochs=many"], "could not be converted to Integer"),
])
def test_the_student_schema_refuses_a_wrong_choice_naming_the_allowed_values(overrides, message) -> None:
    # conf/evaluator/rded.yaml's base is fgdd.evaluation.settings' structured config: refused while composing
    with pytest.raises(ConfigError) as error:
        compose_checked(overrides)
    assert message in str(error.value) and overrides[-1] in str(error.value)


@pytest.mark.parametrize("override, message", [("evaluator.epochs=0", "epochs, eval_every"),
                                               ("evaluator.soft_labels=stored", None),
                                               ("evaluator.lr_step=0", "lr_step must be >= 1")])
def test_student_settings_ranges_are_checked_by_the_config_validation(override, message) -> None:
    if message is None:  # a valid choice passes
        compose_checked([override])
        return
    with pytest.raises(ConfigError, match=message):
        compose_checked([override])


@pytest.mark.parametrize("overrides, message", [
    (["teacher.recipe.augment=autoaugment"],
     "Invalid value 'autoaugment', expected one of [pad_crop_flip, random_resized_crop]"),
    (["teacher.recipe.pipeline=fast"], "Invalid value 'fast', expected one of [batched, loader]"),
    (["experiment=rded_imagenette_conv5", "teacher.recipe.precision=fp16"], "expected one of [auto, fp32, bf16]"),
    (["teacher.recipe.epochs=many"], "could not be converted to Integer"),
])
def test_the_teacher_recipe_schema_refuses_a_wrong_choice_naming_the_allowed_values(overrides, message) -> None:
    # conf/teacher/train.yaml's recipe has fgdd.training.teacher_recipe's structured config as its base
    with pytest.raises(ConfigError) as error:
        compose_checked(overrides)
    assert message in str(error.value) and overrides[-1] in str(error.value)


@pytest.mark.parametrize("override, message", [
    ("teacher.recipe.epochs=0", "epochs, batch_size, eval_batch_size >= 1"),
    ("teacher.recipe.lr=fast", "teacher.recipe.lr must be a number, got 'fast'"),
    ("teacher.recipe.crop_scale=[0.5,0.2]", "crop_scale must be [low, high] with 0 < low <= high <= 1"),
    ("teacher.recipe.label_smoothing=1", "momentum and label_smoothing must be in [0, 1)"),
    ("teacher.recipe.pipeline=loader", None),
])
def test_teacher_recipe_ranges_are_checked_by_the_config_validation(override, message) -> None:
    if message is None:  # a valid choice passes
        compose_checked([override])
        return
    with pytest.raises(ConfigError) as error:
        compose_checked([override])
    assert message in str(error.value)


def test_the_teacher_yaml_builds_its_recipe_object_with_the_numbers_as_written() -> None:
    from fgdd.pipeline import build_teacher_source
    from fgdd.training.teacher_recipe import Augment, TeacherRecipe
    from fgdd.utils.choices import Pipeline, Precision

    teacher = build_teacher_source(compose_checked(["teacher.recipe.pipeline=loader", "teacher.recipe.precision=bf16",
                                                    "teacher.recipe.lr=1", "experiment=rded_imagenette_conv5"]).teacher)
    recipe = teacher.recipe
    assert isinstance(recipe, TeacherRecipe) and recipe.pipeline is Pipeline.loader
    assert recipe.precision is Precision.bf16 and recipe.augment is Augment.random_resized_crop
    assert recipe.crop_scale == (0.35, 1.0) and recipe.epochs == 30 and teacher.min_val_acc == 0.0
    assert type(recipe.lr) is int  # 1 and 1.0 name two cached teachers (tests/test_teacher_cache_key_pinned.py)
    default = build_teacher_source(compose_checked([]).teacher)
    assert default.recipe == TeacherRecipe()  # conf/teacher/train.yaml and the record's defaults agree
    assert compose_checked(["teacher=checkpoint", "teacher.checkpoint=/a.pth"]).teacher.recipe is None  # no recipe


def test_the_evaluator_yaml_builds_its_settings_object() -> None:
    from fgdd.evaluation import SoftLabelEvaluator
    from fgdd.evaluation.settings import Pipeline, Precision, StudentSettings

    cfg = compose_checked(["evaluator.pipeline=loader", "evaluator.precision=bf16", "evaluator.compile=reduce-overhead"])
    evaluator = instantiate(cfg.evaluator, _convert_="all")
    assert isinstance(evaluator, SoftLabelEvaluator) and isinstance(evaluator.settings, StudentSettings)
    assert evaluator.settings.pipeline is Pipeline.loader and evaluator.settings.precision is Precision.bf16
    assert evaluator.settings.compile == "reduce-overhead"
    # the run folder's config.yaml holds the plain values
    assert "pipeline: loader" in OmegaConf.to_yaml(cfg.evaluator)


def test_the_config_validation_imports_no_lightning() -> None:
    # the schema is registered and checked before Hydra configures logging (fgdd.cli's preflight): importing
    # Lightning there would change what the console prints
    import subprocess
    import sys

    code = ("import sys, fgdd.cli; from fgdd.config import compose_checked; "
            "compose_checked(['evaluator=holdout']); print('lightning' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_a_wrapped_evaluators_settings_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="lr_step must be >= 1"):
        compose_checked(["evaluator=holdout", "evaluator.inner.lr_step=0"])
