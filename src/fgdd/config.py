"""OmegaConf resolvers used by conf/ and the checks that run before any work starts."""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from fgdd.errors import ConfigError, FgddError

if TYPE_CHECKING:
    import torch
    from hydra.core.override_parser.types import Override

    from fgdd.data.base import ImageDataset

CONF_DIR = str((Path(__file__).parent / "conf").resolve())  # the package data fgdd/conf: in a clone, a link to conf/


def _accelerator(device: str) -> str:
    return "auto" if device == "auto" else ("gpu" if str(device).startswith("cuda") else "cpu")


def _devices(device: str) -> int | list[int]:
    device = str(device)
    return [int(device.split(":")[1])] if device.startswith("cuda:") else 1


def _convnet_depth(input_size: int) -> int:
    # RDED's ConvNet-D halves the map D times and ends at 4x4: 32 px -> 3, 64 -> 4, 128 -> 5; other sizes get
    # the deepest net whose last map is still at least 4x4 (224 -> 5, ending at 7x7)
    if int(input_size) < 8:
        raise ConfigError(f"input_size={input_size} is too small for a ConvNet; set model.net.depth")
    return int(math.floor(math.log2(int(input_size) / 4)))


def short_hash(text: str) -> str:
    # run folders are named by a hash of the command-line overrides: stable across reruns (so they resume),
    # different for different settings (so parallel jobs never share a folder)
    return hashlib.sha256(str(text).encode()).hexdigest()[:8]


def _weights_dir() -> str:
    # pretrained files fgdd fetches (python -m fgdd.weights): $FGDD_WEIGHTS_DIR, else ~/.cache/fgdd/weights
    from fgdd.weights import weights_dir

    return str(weights_dir())


def _hydra_subdir(output_dir: str) -> str | None:
    # Hydra's own record of a job (.hydra/) goes into a fresh run folder only: a rerun into a folder that holds a
    # recorded run (config.yaml), skipped, resumed or refused, leaves that run's files as they are
    from fgdd.run_folder import CONFIG

    return None if (Path(output_dir) / CONFIG).exists() else ".hydra"


def register_resolvers() -> None:
    resolvers = {
        "accelerator": _accelerator, "devices": _devices, "convnet_depth": _convnet_depth, "short_hash": short_hash,
        "weights_dir": _weights_dir, "hydra_subdir": _hydra_subdir,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    from fgdd.evaluation import settings
    from fgdd.training import teacher_recipe

    settings.register_schema()  # the typed base of conf/evaluator/rded.yaml (/schema/student_evaluator)
    teacher_recipe.register_schema()  # of conf/teacher/train.yaml's recipe (/schema/teacher_recipe)


def validate(cfg: DictConfig) -> None:
    """Everything a run refuses before it reads any data: the top-level values and the settings the dataset and
    selector constructors check. fgdd.run asks it before Hydra makes a run folder, fgdd.check before it reads the
    copy (both exit with status 2), fgdd.pipeline.run before its run folder is recorded."""
    check_values(cfg)
    check_constructors(cfg)


def check_values(cfg: DictConfig) -> None:
    # YAML and the command line give strings where ints are meant
    for key in ("ipc", "seed"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r} ({type(value).__name__})")
    if cfg.ipc < 1:
        raise ConfigError(f"ipc must be at least 1, got {cfg.ipc}")
    if not isinstance(cfg.device, str):
        raise ConfigError(f"device must be a string like auto, cpu or cuda:0; got {cfg.device!r}")


def check_constructors(cfg: DictConfig) -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from fgdd.evaluation.settings import StudentEvaluatorSchema, StudentSettings
    from fgdd.training.teacher_recipe import TeacherRecipe, TeacherRecipeSchema

    checks: list[tuple[Callable[[Any], Any], Any]] = [
        (build_dataset, cfg.dataset), (build, cfg.selector),
        (lambda node: check_typed_settings(node, TeacherRecipeSchema, TeacherRecipe), cfg.teacher),
        (lambda node: check_typed_settings(node, StudentEvaluatorSchema, StudentSettings), cfg.evaluator),
    ]
    for make, node in checks:
        try:
            make(node)  # constructors only: they keep settings, load no model and (but one case) read no data
        except ConfigError:
            raise
        except FgddError:  # Tiny-ImageNet's `classes: null` reads the copy: its data problems are the run's to report
            pass
        except MissingMandatoryValue as error:  # a value the config leaves ??? (segmenter.root of mask_folder)
            raise ConfigError(f"{error.full_key} has no value: set it, `{error.full_key}=...`") from None
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(str(error)) from None


def check_typed_settings(node: Any, schema: type, settings: Callable[..., Any]) -> None:
    """Build ``settings`` from every node under ``node`` that the structured config ``schema`` types (an evaluator's
    own and a wrapping evaluator's ``inner``; a teacher's ``recipe``), so that the settings' own checks (ranges, rules
    between fields) refuse a run before it starts. Builds nothing else (no torch import)."""
    if not isinstance(node, DictConfig):
        return
    if OmegaConf.get_type(node) is schema:
        values = OmegaConf.to_container(node, resolve=True)
        assert isinstance(values, dict)
        values.pop("_target_", None)  # the evaluator schema names its class; the settings are the rest
        settings(**{str(k): v for k, v in values.items()})
        return
    for _, value in node.items_ex(resolve=False):  # an interpolation (dataset: ${dataset}) holds no settings
        check_typed_settings(value, schema, settings)


def compose_checked(overrides: Sequence[str], config_name: str = "run") -> DictConfig:
    """The config a command line composes, or a ConfigError whose message says what to type instead: an unknown
    key names the key meant (Hydra's own hint, "+key=value", would add the typo and run without it), a key added
    with `+` or `++` must be one fgdd reads, and the config must pass ``validate``."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    register_resolvers()
    parsed = parse_overrides(overrides)
    keys = [o for o in parsed if not is_group_override(o) and not o.is_hydra_override() and not o.is_delete()]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        try:
            cfg = compose(config_name=config_name, overrides=list(overrides))
        except ConfigCompositionException as error:
            if isinstance(error.__cause__, (ConfigKeyError, ConfigAttributeError)):  # "Could not override 'key'"
                refuse_unknown_keys(compose(config_name=config_name, overrides=schema_overrides(parsed, keys)), keys)
            raise ConfigError(composition_message(error)) from None
        except (HydraException, OmegaConfBaseException) as error:  # an unknown option, a missing value
            raise ConfigError(str(error)) from None
        if any(o.is_add() or o.is_force_add() for o in keys):
            refuse_unknown_keys(compose(config_name=config_name, overrides=schema_overrides(parsed, keys)), keys)
    validate(cfg)
    return cfg


def composition_message(error: Exception) -> str:
    # Hydra's message names the override; its cause says what is wrong with it (a typed schema's "Invalid value
    # 'fast', expected one of [batched, loader]"), first line only. Never Hydra's "+key" hint.
    message = str(error).split("\nTo append")[0]
    cause = str(error.__cause__ or "").split("\n")[0]
    return f"{message}: {cause}" if cause and cause not in message else message


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:  # not key=value
        raise ConfigError(str(error)) from None


def is_group_override(override: Override) -> bool:
    # Hydra's rule: the key names a config group (a folder of conf/), e.g. selector=fgdd, model@teacher.arch=...
    return (Path(CONF_DIR) / override.key_or_group).is_dir()


def schema_overrides(parsed: Sequence[Override], keys: Sequence[Override]) -> list[str]:
    # the keys a command line may set are those its group choices (and Hydra's own settings) compose
    return [str(o.input_line) for o in parsed if o not in keys]


def refuse_unknown_keys(schema: DictConfig, keys: Sequence[Override]) -> None:
    for override in keys:
        problem = unknown_key(schema, override)
        if problem:
            raise ConfigError(problem)


def unknown_key(schema: DictConfig, override: Override) -> str | None:
    """Why ``override`` sets a key fgdd does not read, with the key meant; None when it is one fgdd reads."""
    parts = override.key_or_group.split(".")
    node: Any = schema
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig):  # inside a list or a value: Hydra's own checks apply
            return None
        parent = ".".join(parts[:depth])
        addable = tuple(ADDABLE[parent]()) if parent in ADDABLE and depth == len(parts) - 1 else ()
        if part not in node and part not in addable:
            return unknown_key_message(override, parts, depth, [str(key) for key in node], addable)
        node = node.get(part)
    return None


def unknown_key_message(override: Override, parts: list[str], depth: int, listed: list[str],
                        addable: Sequence[str]) -> str:
    parent = ".".join(parts[:depth])
    meant = difflib.get_close_matches(parts[depth], [*listed, *addable], n=1, cutoff=0.6)
    if meant:
        fixed = ".".join([*parts[:depth], meant[0], *parts[depth + 1:]])
        prefix = "" if meant[0] in listed else "+"  # a Trainer argument the config does not list is added
        advice = f"did you mean {meant[0]}? (`{prefix}{fixed}={override.get_value_element_as_str()}`)"
    else:
        advice = f"the keys {f'under {parent}' if parent else 'at the top level'} are {', '.join(listed)}"
    return (f"unknown key `{'.'.join(parts[:depth + 1])}` in `{override.input_line}`: {advice}. fgdd reads only "
            f"the keys its configs list{ADDABLE_TEXT.get(parent, '')}, so a `+` or `++` in front cannot add one")


def trainer_keywords() -> tuple[str, ...]:
    import inspect

    import lightning.pytorch as L  # only when a command line adds a key under trainer

    return tuple(name for name in inspect.signature(L.Trainer.__init__).parameters if name != "self")


# Nodes under which `+key=value` may add what the config does not list: conf/trainer is passed to Lightning's
# Trainer as keyword arguments, so any of its arguments is a setting fgdd reads
ADDABLE: dict[str, Callable[[], Sequence[str]]] = {"trainer": trainer_keywords}
ADDABLE_TEXT = {"trainer": " and, under trainer, the arguments of Lightning's Trainer"}


def setting_source(cfg: DictConfig, key: str) -> str:
    """Where the value of ``key`` (dotted) came from, for messages: the command line, an environment variable or
    the config's default. fgdd's configs only interpolate these values (conf/run.yaml's ``${oc.env:...}``, a
    dataset's ``root: ${data_root}``), so a value that is no interpolation was given as an override."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or last not in node:
        return ""
    raw = str(OmegaConf.to_container(OmegaConf.masked_copy(node, [last]), resolve=False)[last])
    if followed := re.fullmatch(r"\$\{([\w.]+)\}", raw):  # e.g. dataset.root: ${data_root}
        return setting_source(cfg, followed[1])
    if env := re.fullmatch(r"\$\{oc\.env:(\w+),([^}]*)\}", raw):
        variable, default = env.groups()
        if os.environ.get(variable):
            return f"${variable}"
        where = "" if Path(default).is_absolute() else f" under the working directory {Path.cwd()}"
        return f"the config's default ({default}{where}; ${variable} is not set)"
    return f"the command line (`{key}={raw}`)"


def resolved_yaml(cfg: DictConfig) -> str:
    """config.yaml of a run folder (fgdd.run_folder compares it with a rerun's)."""
    return OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)


def build_dataset(node: DictConfig) -> ImageDataset:
    """Instantiate a conf/dataset node (fgdd.config.build: a constructor's own error reaches the user as itself);
    the dataset knows where its root came from, for its messages."""
    dataset = build(node)
    # OmegaConf keeps the parent chain: the node still knows the run config (data_root, $FGDD_DATA_DIR) it came from
    dataset.root_source = setting_source(node._get_root(), f"{node._key()}.root") if node._get_parent() else ""
    return dataset


def build(node: DictConfig) -> Any:
    """Instantiate a config node (``_target_``); a constructor's own error (it names the remedy) reaches the user as
    itself, not wrapped in Hydra's InstantiationException with a traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as error:
        if isinstance(error.__cause__, FgddError):
            raise error.__cause__ from None
        raise


def stage_precisions(cfg: DictConfig, device: torch.device | str) -> dict[str, str]:
    """What each stage of a run computes in, resolved up front from its config on ``device`` (run.json's
    "precision"): teacher "loaded" for a checkpoint, select "n/a" for a selector that scores nothing."""
    from fgdd.utils.precision import SETTINGS, resolve_precision  # imports torch: only when a run records itself
    if cfg.teacher.get("checkpoint"):
        teacher = "loaded"
    elif OmegaConf.select(cfg, SETTINGS["teacher"]) is not None:
        teacher = resolve_precision(OmegaConf.select(cfg, SETTINGS["teacher"]), device, stage="teacher")
    else:  # a teacher recipe without its own precision trains in Lightning's trainer.precision
        lightning = str(OmegaConf.select(cfg, "trainer.precision", default="32-true"))
        teacher = "bf16" if lightning.startswith("bf16") else "fp16" if lightning.startswith("16") else "fp32"
    select = OmegaConf.select(cfg, SETTINGS["select"])
    student = (OmegaConf.select(cfg, SETTINGS["student"]) or OmegaConf.select(cfg, "evaluator.inner.precision")
               or "auto")  # an evaluator wrapping another (lr search, holdout, full real) sets it on its inner one
    return {
        "teacher": teacher,
        "select": "n/a" if select is None else resolve_precision(select, device, stage="select"),
        "student": resolve_precision(student, device, stage="student"),
    }
