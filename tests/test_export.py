"""fgdd.export: a run's distilled set with its soft labels, read back by load_export. The round trip trains the same
student to the same accuracy; the stored labels are the teacher's on inputs a consumer rebuilds from the stored
augmentation parameters alone, and those inputs are the ones fgdd's student sees in the same epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fgdd.errors import FgddError
from fgdd.export import LABELS, export_run, load_export, main
from fgdd.run import run
from tests.test_run import tiny_cfg

CPU = {"accelerator": "cpu", "devices": 1, "deterministic": True, "enable_progress_bar": False}
ROUNDS = 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny shapes run with 2x2 mosaics (so the tile shuffle is exercised) and its export, logits and top-k."""
    tmp = tmp_path_factory.mktemp("export")
    run(tiny_cfg(tmp, "dataset.factor=2", "ipc=1"), tmp / "run")
    export_run(tmp / "run", tmp / "logits", rounds=ROUNDS)
    export_run(tmp / "run", tmp / "topk", rounds=ROUNDS, labels="topk", topk=3)
    return tmp / "run", tmp / "logits", tmp / "topk"


def run_parts(run_dir: Path):
    from hydra.utils import instantiate

    from fgdd.pipeline import obtain_teacher
    from fgdd.selection.distilled_set import DistilledSet

    cfg = OmegaConf.load(run_dir / "config.yaml")
    dataset = instantiate(cfg.dataset, _convert_="all")
    teacher, _ = obtain_teacher(cfg, dataset, torch.device("cpu"), dict(CPU))
    return cfg, dataset, teacher, DistilledSet(run_dir / "distilled", classes=dataset.classes)


def test_layout_and_description(exported) -> None:
    run_dir, out, _ = exported
    description = json.loads((out / "export.json").read_text())
    n = len(list((run_dir / "distilled").rglob("*.jpg")))
    assert n == 10  # 10 classes x ipc 1
    assert description["tensors"]["logits"] == {"shape": [ROUNDS, n, 10], "dtype": "float32"}
    assert description["tensors"]["crop_boxes"]["shape"] == [ROUNDS, n, 4]
    assert description["tensors"]["col_strips"] == {"shape": [ROUNDS, n, 2], "dtype": "int8"}
    assert description["factor"] == 2 and description["input_size"] == 32 and description["temperature"] == 20.0
    assert description["seeds"]["run_seed"] == 0 and len(description["classes"]) == 10
    for image in (run_dir / "distilled").rglob("*.jpg"):  # byte copies in class folders
        assert (out / "images" / image.relative_to(run_dir / "distilled")).read_bytes() == image.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (out / "images" / "circle").stat().st_mode & 0o777 == 0o777 & ~umask
    tensors = torch.load(out / LABELS, weights_only=True)  # plain tensors: any torch user can read it
    assert tensors["files"][0] == "circle/0000.jpg" and tensors["labels"].tolist() == list(range(10))


def student10(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))


def test_round_trip_trains_the_same_student_to_the_same_accuracy(exported) -> None:
    from fgdd.evaluation import SoftLabelEvaluator

    run_dir, out, _ = exported
    _, dataset, teacher, distilled = run_parts(run_dir)

    def train(images) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        student = student10(seed=3)  # the same student, the same seed
        metrics = SoftLabelEvaluator(epochs=2, batch_size=4, num_workers=0).evaluate(
            images, dataset.val(), student, teacher, lr=0.01, spec=dataset.spec, seed=5, trainer_kwargs=CPU)
        metrics.pop("student/train_seconds")
        return metrics, student.state_dict()

    (before, weights_before), (after, weights_after) = train(distilled), train(load_export(out).distilled())
    assert before == after and 0.0 <= after["student/top1_final"] <= 1.0
    assert all(torch.equal(weights_before[k], weights_after[k]) for k in weights_before)


def test_labels_are_the_teachers_on_the_inputs_fgdds_student_sees(exported) -> None:
    from fgdd.evaluation.augment import StudentTrainTransform
    from fgdd.evaluation.loaders import AugmentedDistilledSet, SeededEpochSampler
    from fgdd.utils.seeding import STUDENT_DATA, derive_seed

    run_dir, out, _ = exported
    cfg, dataset, teacher, distilled = run_parts(run_dir)
    export = load_export(out)
    images = export.images()
    train_set = AugmentedDistilledSet.preload(distilled, 10, StudentTrainTransform(32, 2, dataset.mean, dataset.std))
    sampler = SeededEpochSampler(len(train_set), derive_seed(int(cfg.seed), STUDENT_DATA))
    for r in range(ROUNDS):
        rebuilt = export.inputs(r, images)  # (n, 3, 32, 32) from the stored parameters alone
        seen = {index: train_set[(index, seed)][0] for index, seed in sampler}  # fgdd's epoch r, sampled in turn
        assert torch.allclose(torch.stack([seen[i] for i in range(len(seen))]), rebuilt, atol=1e-5)
        with torch.no_grad():
            assert torch.allclose(teacher.eval()(rebuilt), export.tensors["logits"][r], atol=1e-4)
    # the rounds differ: different crops, so different inputs
    assert not torch.equal(export.tensors["crop_boxes"][0], export.tensors["crop_boxes"][1])


def test_topk_labels_are_the_stored_form(exported) -> None:
    _, out, topk_out = exported
    full, top = load_export(out), load_export(topk_out)
    assert top.description["tensors"]["topk_probs"] == {"shape": [ROUNDS, 10, 3], "dtype": "float16"}
    probs = torch.softmax(full.tensors["logits"] / 20.0, dim=-1)
    values, classes = probs.topk(3, dim=-1)
    assert torch.equal(top.tensors["topk_classes"].long(), classes)
    assert torch.allclose(top.tensors["topk_probs"].float(), values, atol=1e-3)
    targets = top.targets(0)  # (n, 10), the rest of the mass spread over the other 7 classes
    assert torch.allclose(targets.sum(1), torch.ones(10), atol=1e-3)
    assert torch.allclose(full.targets(0), probs[0])


class PixelTeacher(torch.nn.Module):
    """Logits that are input pixels (row 5 of the red channel): no reduction whose rounding depends on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 5, :3]  # (n, 3 classes)


def pinned_export_digests(tmp_path: Path) -> tuple[dict[str, str], str]:
    """The export of a fixed set: (a digest of each stored tensor, a digest of every round's rebuilt inputs). PNG
    mosaics of seeded pixels and a teacher that copies pixels, so every value is exact arithmetic or a fixed-order
    resize: the same on any CPU."""
    import hashlib
    from types import SimpleNamespace

    from fgdd.export import export_set
    from fgdd.selection.distilled_set import DistilledSet, Patch, write_distilled_set

    g = torch.Generator().manual_seed(0)
    classes = ["a", "b", "c"]
    selection = {label: [Patch(label=label, source=f"{label}/{k}.png", box=(0, 0, 10, 10), source_size=(10, 10),
                               score=None, pixels=torch.randint(0, 256, (3, 10, 10), generator=g) / 255.0)
                         for k in range(8)] for label in range(3)}  # ipc 2 of 2x2 mosaics, 20 x 20 pixels
    root = write_distilled_set(tmp_path / "set", selection, classes, ipc=2, factor=2, image_format="png")
    dataset = SimpleNamespace(name="pinned", classes=classes, input_size=16, mean=(0.4, 0.5, 0.6),
                              std=(0.2, 0.25, 0.3))
    out = tmp_path / "export"
    export_set(DistilledSet(root, classes), dataset, PixelTeacher(), out, seed=3, temperature=20.0,
               teacher_record={}, source_run=tmp_path, rounds=3, labels="logits", topk=10,
               device=torch.device("cpu"), batch_size=4)
    export = load_export(out)

    def digest(tensors: list[torch.Tensor]) -> str:
        return hashlib.sha256(b"".join(str((t.dtype, tuple(t.shape))).encode() + t.contiguous().numpy().tobytes()
                                       for t in tensors)).hexdigest()[:16]

    names = ["labels", "sample_seeds", "col_strips", "row_strips", "crop_boxes", "flips", "logits"]
    return {name: digest([export.tensors[name]]) for name in names}, digest([export.inputs(r) for r in range(3)])


# recorded 2026-12-07 with export's own copy of the student transform, before export used the evaluator's
# (``python tests/test_export.py`` prints them); re-record only for an intended change of what export writes
PINNED_TENSORS = {
    "labels": "8c9a7597a909b51f", "sample_seeds": "2795492e59c547df", "col_strips": "e99e33b5909a165e",
    "row_strips": "cd7ea9947852d3c2", "crop_boxes": "e148c8bf0f213a89", "flips": "29794e6a9f719f91",
    "logits": "3b56916ce93824e3",
}
PINNED_INPUTS = "ac8da3a52e6464c9"


def test_an_export_is_pinned(tmp_path) -> None:
    """What export draws and stores, and the inputs a consumer rebuilds, as recorded (PINNED_TENSORS, _INPUTS)."""
    tensors, inputs = pinned_export_digests(tmp_path)
    assert tensors == PINNED_TENSORS and inputs == PINNED_INPUTS


def test_errors_name_the_remedy(exported, tmp_path) -> None:
    run_dir, out, _ = exported
    with pytest.raises(FgddError, match="already exists; fgdd.export never overwrites"):
        export_run(run_dir, out, rounds=1)
    with pytest.raises(FgddError, match="not a fgdd run folder"):
        export_run(tmp_path, tmp_path / "x", rounds=1)
    with pytest.raises(FgddError, match="not a fgdd export"):
        load_export(tmp_path)
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(out, broken)
    with open(broken / LABELS, "ab") as f:
        f.write(b"x")
    with pytest.raises(FgddError, match="does not match the checksum.*export again"):
        load_export(broken)


def test_command_line(exported, tmp_path, capsys) -> None:
    run_dir, _, _ = exported
    assert main([str(run_dir), str(tmp_path / "cli"), "--rounds", "1"]) == 0
    assert load_export(tmp_path / "cli").tensors["logits"].shape == (1, 10, 10)
    assert main([str(run_dir), str(tmp_path / "cli"), "--rounds", "1"]) == 2
    assert "never overwrites" in capsys.readouterr().err


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(pinned_export_digests(Path(tmp)))
