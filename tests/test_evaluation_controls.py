"""DD-Ranking's controls as evaluators: the student without augmentation, the learning-rate search (selection on
a holdout that leaves out the distilled set's sources, or on the test set), and the cached full-real reference."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from fgdd.cache.keyed import key_digest
from fgdd.data.base import folder_split
from fgdd.errors import ConfigError
from fgdd.evaluation import SoftLabelEvaluator
from fgdd.evaluation.full_real import FullRealEvaluator
from fgdd.evaluation.holdout import HoldoutEvaluator
from fgdd.evaluation.lr_search import LRSearchEvaluator, holdout_split
from fgdd.evaluation.plain import PlainBatchAugment, PlainTrainTransform
from fgdd.run import CONF_DIR, run
from tests.test_evaluation_evaluator import MEAN, SPEC, STD, ColourTeacher, tiny_student
from tests.test_evaluation_evaluator import run as evaluate
from tests.test_run import tiny_cfg

CLASSES = ["a", "b"]


# -- no augmentation --------------------------------------------------------------------------------------------

def test_plain_transform_draws_nothing_and_resizes_and_normalises() -> None:
    transform = PlainTrainTransform(16, MEAN, STD)
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    out = transform(image, g)
    assert torch.equal(g.get_state(), state)  # nothing random is drawn
    assert out.shape == (3, 16, 16)
    pixels = torch.stack([image, image.flip(-1)])
    batch = transform.apply_batch(pixels, torch.tensor([1, 0]), {})
    assert torch.allclose(batch[1], out, atol=1e-6) and torch.allclose(batch[0], transform.apply(pixels[1], {}))
    same = PlainTrainTransform(24, MEAN, STD).apply(image, {})  # already at size: only scaled and normalised
    expected = (image.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(same, expected, atol=1e-6)


def weights(**settings: Any) -> dict[str, torch.Tensor]:
    student = tiny_student()
    evaluate(SoftLabelEvaluator(epochs=2, batch_size=4, num_workers=0, **settings), ColourTeacher(), student=student)
    return student.state_dict()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_student_without_augmentation_is_reproducible_and_differs_from_the_augmented_one() -> None:
    plain = weights(augment=False, cutmix=False)  # the default, batched pipeline
    assert same(plain, weights(augment=False, cutmix=False))
    assert not same(plain, weights(cutmix=False))  # the switch really removes the augmentation
    loader = weights(augment=False, cutmix=False, pipeline="loader")
    assert same(loader, weights(augment=False, cutmix=False, pipeline="loader", augment_on_device=True))  # same pixels
    assert not same(loader, weights(cutmix=False, pipeline="loader"))


def test_batched_plain_augment_draws_nothing_and_gives_the_plain_images() -> None:
    augment = PlainBatchAugment(16, MEAN, STD)
    pixels = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    assert augment.draw(3, 24, 24, torch.Generator().manual_seed(0)) == {}
    batch = augment.apply_batch(pixels, torch.tensor([2, 0]), {})
    assert torch.allclose(batch[0], PlainTrainTransform(16, MEAN, STD).apply(pixels[2], {}), atol=1e-6)


# -- learning-rate search -----------------------------------------------------------------------------------------

def write_images(root: Path, per_class: int) -> None:
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (40 * i % 255, 0, 0) if c == "a" else (0, 0, 40 * i % 255)).save(
                root / c / f"{i:03d}.png")


class FakeDataset:
    name = "fake"

    def __init__(self, root: Path, per_class: int = 10) -> None:
        if not root.exists():  # written once: a rewrite would be new content (the split hashes sizes and mtimes)
            write_images(root / "train", per_class)
            write_images(root / "val", 3)
        self.root = root

    def train(self):
        return folder_split(self.root / "train", CLASSES, self.root)

    def val(self):
        return folder_split(self.root / "val", CLASSES, self.root)


class FakeDistilled(torch.utils.data.Dataset):
    def __init__(self, sources: list[str]) -> None:
        self.sources = sources

    def manifest(self) -> list[dict[str, str]]:
        return [{"source": s} for s in self.sources]


class ScriptedInner:
    """Returns top-1 from a table per (split, lr); records every call."""

    epochs, num_workers = 3, 0

    def __init__(self, holdout: dict[float, float], test: dict[float, float]) -> None:
        self.tables = {"holdout": holdout, "test": test}
        self.calls: list[dict[str, Any]] = []

    def evaluate(self, distilled, val, student, teacher, *, lr, seed, trainer_kwargs, logger=None, **settings):
        split = "test" if getattr(val, "name", None) == "test" else "holdout"
        self.calls.append({"lr": lr, "split": split, "student": student, "logger": logger, "val": val, **settings})
        return {"student/top1_final": self.tables[split][lr], "student/train_seconds": 1.0}


class TestSplit:
    name = "test"


def search(inner: ScriptedInner, tmp_path: Path, select_on: str = "holdout", **kw: Any) -> dict[str, float]:
    evaluator = LRSearchEvaluator(inner, lrs=[0.001, 0.01, 0.1], select_on=select_on,
                                  dataset=FakeDataset(tmp_path / "data"), holdout_per_class=4, **kw)
    return evaluator.evaluate(FakeDistilled(["train/a/000.png", "train/b/001.png"]), TestSplit(), tiny_student(),
                              None, lr=0.5, seed=3, trainer_kwargs={}, logger="the-logger", spec=SPEC)


def test_search_selects_on_the_holdout_and_reports_the_retrained_students_test_accuracy(tmp_path) -> None:
    inner = ScriptedInner(holdout={0.001: 0.5, 0.01: 0.7, 0.1: 0.6}, test={0.001: 0.9, 0.01: 0.4, 0.1: 0.3})
    metrics = search(inner, tmp_path)
    # 0.01 is best on the holdout, so it is reported although 0.001 is best on the test set
    assert metrics["lr_search/lr"] == 0.01 and metrics["student/top1_final"] == 0.4
    assert metrics["lr_search/select_top1@0.001"] == 0.5 and metrics["lr_search/trainings"] == 4.0
    assert [(c["lr"], c["split"]) for c in inner.calls] == [(0.001, "holdout"), (0.01, "holdout"), (0.1, "holdout"),
                                                            (0.01, "test")]
    assert [c["logger"] for c in inner.calls] == [None, None, None, "the-logger"]  # only the reported one logs
    assert all(c["spec"] is SPEC for c in inner.calls)  # the run's settings reach the inner evaluator
    students = [c["student"] for c in inner.calls]  # a fresh copy of the same initial weights every time
    assert len({id(s) for s in students}) == 4 and all(same(students[0].state_dict(), s.state_dict()) for s in students)


def test_search_ties_go_to_the_smaller_lr_and_test_selection_reports_the_best_test(tmp_path) -> None:
    inner = ScriptedInner(holdout={0.001: 0.6, 0.01: 0.6, 0.1: 0.2}, test={0.001: 0.1, 0.01: 0.2, 0.1: 0.3})
    assert search(inner, tmp_path)["lr_search/lr"] == 0.001
    inner = ScriptedInner(holdout={}, test={0.001: 0.1, 0.01: 0.3, 0.1: 0.3})
    metrics = search(inner, tmp_path / "t", select_on="test")
    assert (metrics["lr_search/lr"], metrics["student/top1_final"], metrics["lr_search/trainings"]) == (0.01, 0.3, 3.0)
    assert len(inner.calls) == 3 and {c["split"] for c in inner.calls} == {"test"}


def test_holdout_is_balanced_seeded_and_leaves_out_the_distilled_sources(tmp_path) -> None:
    train = FakeDataset(tmp_path / "data").train()
    exclude = {f"train/a/{i:03d}.png" for i in range(5)}
    holdout = holdout_split(train, 5, exclude, seed=0)
    names = [holdout.relpath(i) for i in range(len(holdout))]
    assert holdout.targets == [0] * 5 + [1] * 5
    assert not set(names) & exclude and {n.split("/")[1] for n in names} == {"a", "b"}
    assert names == [holdout_split(train, 5, exclude, seed=0).relpath(i) for i in range(10)]
    assert names != [holdout_split(train, 5, set(), seed=1).relpath(i) for i in range(10)]
    with pytest.raises(ConfigError, match="only 5 are left; lower evaluator.holdout_per_class"):
        holdout_split(train, 6, exclude, seed=0)


def test_holdout_evaluator_scores_the_same_student_on_the_holdout_and_never_reports_it_as_test(tmp_path) -> None:
    inner = ScriptedInner(holdout={0.01: 0.7}, test={0.01: 0.4})
    evaluator = HoldoutEvaluator(inner, dataset=FakeDataset(tmp_path / "data"), holdout_per_class=4, epochs=3)
    sources = ["train/a/000.png", "train/b/001.png"]
    student = tiny_student()
    metrics = evaluator.evaluate(FakeDistilled(sources), TestSplit(), student, None, lr=0.01, seed=3,
                                 trainer_kwargs={}, logger="the-logger", ipc=1)
    assert metrics == {"holdout/top1_final": 0.7, "student/train_seconds": 1.0, "holdout/images": 8.0}
    (call,) = inner.calls  # one training, on the run's own settings, logged as the run's
    assert call["split"] == "holdout" and call["student"] is student and call["logger"] == "the-logger"
    assert call["ipc"] == 1 and not {call["val"].relpath(i) for i in range(len(call["val"]))} & set(sources)
    with pytest.raises(ConfigError, match="evaluator.epochs=5 but evaluator.inner.epochs=3"):
        HoldoutEvaluator(inner, dataset=None, epochs=5)


def test_search_errors_name_the_remedy(tmp_path) -> None:
    inner = ScriptedInner({}, {})
    with pytest.raises(ConfigError, match="draws its holdout from the dataset"):
        LRSearchEvaluator(inner)
    with pytest.raises(ConfigError, match="evaluator.epochs=5 but evaluator.inner.epochs=3"):
        LRSearchEvaluator(inner, select_on="test", epochs=5)
    with pytest.raises(ConfigError, match="positive learning rates"):
        LRSearchEvaluator(inner, lrs=[], select_on="test")
    evaluator = LRSearchEvaluator(inner, dataset=FakeDataset(tmp_path / "data"))
    with pytest.raises(ConfigError, match="no manifest.*select_on=test"):
        evaluator.evaluate(torch.utils.data.TensorDataset(torch.zeros(1)), TestSplit(), tiny_student(), None, lr=0.1,
                           seed=0, trainer_kwargs={})


# -- full-real reference --------------------------------------------------------------------------------------------

class CountingInner:
    hard_labels, batch_size, epochs, num_workers = True, 8, 1, 0

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def evaluate(self, distilled, val, student, teacher, **settings):
        self.calls.append({"distilled": distilled, "teacher": teacher, **settings})
        return {"student/top1_final": 0.75, "student/train_seconds": 2.0}


def reference(tmp_path: Path, inner: CountingInner, student: torch.nn.Module, seed: int = 0) -> dict[str, float]:
    dataset = FakeDataset(tmp_path / "data")
    evaluator = FullRealEvaluator(inner, dataset, cache_dir=str(tmp_path / "cache"))
    return evaluator.evaluate(FakeDistilled([]), dataset.val(), student, ColourTeacher(), lr=0.01, spec=SPEC,
                              seed=seed, trainer_kwargs={"accelerator": "cpu"})


def test_reference_trains_on_the_whole_training_split_once_then_reads_its_cache(tmp_path) -> None:
    inner = CountingInner()
    first = reference(tmp_path, inner, tiny_student())
    assert first["reference/cached"] == 0.0 and first["student/top1_final"] == 0.75
    call = inner.calls[0]
    trained_on = call["distilled"]  # the whole train split, 2 classes x 10 photos: factor 1 (no tile shuffle)
    assert len(trained_on) == 20 and call["teacher"] is None and (trained_on.ipc, trained_on.factor) == (10, 1)
    assert call["lr"] == 0.01 and call["spec"] is SPEC
    again = CountingInner()  # another run of the sweep (another selector, IPC or teacher): read back
    second = reference(tmp_path, again, tiny_student())
    assert again.calls == [] and second["reference/cached"] == 1.0
    assert {k: v for k, v in second.items() if k != "reference/cached"} == \
           {k: v for k, v in first.items() if k != "reference/cached"}
    reference(tmp_path, again, tiny_student(seed=1))  # other initial weights (another run seed): trained again
    assert len(again.calls) == 1
    cached = list((tmp_path / "cache" / "full_real").glob("fake-*.json"))
    assert len(cached) == 2 and "student_init_sha256" in json.loads(cached[0].read_text())["key"]


def test_a_reference_cached_under_its_old_name_is_read_once_and_then_found_under_the_current_one(
        tmp_path, caplog) -> None:
    dataset = FakeDataset(tmp_path / "data")
    evaluator = FullRealEvaluator(CountingInner(), dataset, cache_dir=str(tmp_path / "cache"))
    key = evaluator.key(dataset.train(), dataset.val(), tiny_student(), 0.01, 0, SPEC, {"accelerator": "cpu"})
    # written the way fgdd wrote it before the cache was a keyed entry: <dataset>-<sha256 of the key, 20 chars>.json
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    folder = tmp_path / "cache" / "full_real"
    folder.mkdir(parents=True)
    old = folder / f"fake-{digest[:20]}.json"
    old.write_text(json.dumps({"key": key, "metrics": {"student/top1_final": 0.5}}, indent=2, sort_keys=True,
                              default=str) + "\n")
    inner = CountingInner()
    with caplog.at_level(logging.INFO, logger="fgdd.cache.keyed"):
        assert reference(tmp_path, inner, tiny_student()) == {"student/top1_final": 0.5, "reference/cached": 1.0}
    assert inner.calls == [] and "copied to its current name" in caplog.text
    current = folder / f"fake-{digest[:12]}.json"  # the same digest of the same key, fgdd.cache.keyed's length
    assert json.loads(current.read_text()) == json.loads(old.read_text())  # the same key and metrics
    old.rename(folder / "elsewhere")  # from now on the current name is what is read
    assert reference(tmp_path, inner, tiny_student())["student/top1_final"] == 0.5 and inner.calls == []
    # an old file written for another key is not this run's reference: trained, stored under the current name
    other = {**key, "seed": 1}
    (folder / f"fake-{key_digest(other)[:20]}.json").write_text(json.dumps({"key": key, "metrics": {}}))
    assert reference(tmp_path, inner, tiny_student(), seed=1)["reference/cached"] == 0.0 and len(inner.calls) == 1
    assert "written for another key" in caplog.text and (folder / f"fake-{key_digest(other)[:12]}.json").is_file()


def test_reference_needs_hard_labels_and_a_batch_size(tmp_path) -> None:
    dataset = FakeDataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="hard labels; set evaluator.inner.hard_labels=true"):
        FullRealEvaluator(SoftLabelEvaluator(), dataset, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="inner.batch_size must be set"):
        FullRealEvaluator(SoftLabelEvaluator(hard_labels=True), dataset, cache_dir=str(tmp_path))


# -- the configs and the pipeline --------------------------------------------------------------------------------

@pytest.mark.parametrize("evaluator", ["soft_noaug", "hard_lr_search", "full_real"])
def test_every_control_takes_the_common_budget_overrides(evaluator: str, tmp_path) -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="run", overrides=[f"evaluator={evaluator}", "debug=fast", f"data_root={tmp_path}"])
    inner = cfg.evaluator.get("inner") or cfg.evaluator
    assert (inner.epochs, inner.num_workers) == (2, 0)  # debug=fast sets evaluator.epochs and num_workers
    assert inner.get("augment") is False and inner.get("cutmix") is False


def test_pipeline_runs_the_controls_and_pays_the_reference_once(tmp_path) -> None:
    searched = run(tiny_cfg(tmp_path, "evaluator=hard_lr_search", "evaluator.lrs=[0.001,0.01]",
                            "evaluator.holdout_per_class=5"), tmp_path / "hard")
    assert searched["lr_search/lr"] in (0.001, 0.01) and searched["lr_search/trainings"] == 3.0
    first = run(tiny_cfg(tmp_path, "evaluator=full_real"), tmp_path / "ref-rded")
    other = run(tiny_cfg(tmp_path, "evaluator=full_real", "ipc=3"), tmp_path / "ref-ipc3")  # another job of a sweep
    assert (first["reference/cached"], other["reference/cached"]) == (0.0, 1.0)
    assert first["student/top1_final"] == other["student/top1_final"]
    assert first["reference/train_images"] == 240.0  # the tiny shapes set: 10 classes x 24 training images


def test_ddranking_search_only_for_named_selectors_and_on_the_best_of_evaluations(tmp_path) -> None:
    """evaluator=ddranking_rded: a method keeps its rate (one training at the recipe's lr); the random set's rate is
    searched and chosen by select_metric (DD-Ranking's best of its evaluations)."""
    inner = ScriptedInner(holdout={}, test={0.5: 0.4})
    metrics = search(inner, tmp_path, select_on="test", search_selectors=["random_real"], selector="rded")
    assert [c["lr"] for c in inner.calls] == [0.5] and (metrics["lr_search/lr"], metrics["lr_search/trainings"]) == (
        0.5, 1.0)

    class BestOf(ScriptedInner):
        def evaluate(self, *args, **kwargs):
            out = super().evaluate(*args, **kwargs)
            return {**out, "student/top1_best_tail": {0.001: 0.2, 0.01: 0.1, 0.1: 0.9}[kwargs["lr"]]}

    inner = BestOf(holdout={}, test={0.001: 0.5, 0.01: 0.4, 0.1: 0.3})
    metrics = search(inner, tmp_path / "b", select_on="test", search_selectors=["random_real"], selector="random_real",
                     select_metric="student/top1_best_tail")
    assert (metrics["lr_search/lr"], metrics["student/top1_best_tail"], metrics["student/top1_final"]) == (0.1, 0.9, 0.3)


def test_sgd_step_student_trains_and_changes_the_reference_key_only_off_fgdds_recipe(tmp_path) -> None:
    from fgdd.evaluation.full_real import _recipe

    sgd = weights(hard_labels=True, augment=False, cutmix=False, optimizer="sgd", momentum=0.9, lr_step=1)
    assert not same(sgd, weights(hard_labels=True, augment=False, cutmix=False))
    assert "optimizer" not in _recipe(SoftLabelEvaluator(hard_labels=True))  # keys cached before the setting match
    assert _recipe(SoftLabelEvaluator(hard_labels=True, optimizer="sgd", lr_step=100))["lr_step"] == 100
    with pytest.raises(ConfigError, match="evaluator.optimizer must be one of"):
        SoftLabelEvaluator(optimizer="adam")


def test_ddranking_exact_controls_run_through_the_pipeline(tmp_path) -> None:
    """The ddranking_* evaluators as a run builds them: the random set's soft-label rate searched on the test set
    (5 rates), the SGD step reference trained and cached apart from fgdd's (its recipe is in the key)."""
    from tests.test_selection_folder import folder_cfg  # the tiny settings without rded's

    searched = run(folder_cfg(tmp_path, "selector=random_real", "evaluator=ddranking_rded"), tmp_path / "random")
    assert searched["lr_search/trainings"] == 5.0 and searched["lr_search/lr"] in (0.001, 0.005, 0.01, 0.05, 0.1)
    reference = run(tiny_cfg(tmp_path, "evaluator=ddranking_full_real", "evaluator.inner.lr_step=1"), tmp_path / "ref")
    fgdds = run(tiny_cfg(tmp_path, "evaluator=full_real"), tmp_path / "fgdd-ref")
    assert (reference["reference/cached"], fgdds["reference/cached"]) == (0.0, 0.0)  # two recipes, two entries
    assert reference["reference/lr"] == 0.01
