"""selector=folder: an external set read into a run. The round trip (a run's set exported by fgdd.export and read
back) trains the student to the run's own accuracy; a missing folder, a class mismatch and unequal ipc stop with
the remedy, and real photos of any size become input-sized images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir

from fgdd.config import build
from fgdd.errors import ClassMismatchError, ConfigError, FgddError
from fgdd.export import export_run
from fgdd.run import CONF_DIR, run
from fgdd.selection.folder import FolderSelector
from tests.test_run import TINY, TINY_SHAPES

STUDENT = ("student/top1_final", "student/top5_final", "student/top1_best_tail")


def folder_cfg(tmp: Path, *overrides: str):
    # TINY minus its rded settings (selector=folder has no mipc / num_candidates)
    tiny = [o for o in TINY if not o.startswith("selector.")]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=[*TINY_SHAPES, *tiny, f"data_root={tmp / 'data'}",
                                                     f"cache_dir={tmp / 'cache'}", *overrides])


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory) -> tuple[dict, dict, Path, Path]:
    """A tiny shapes run with 2x2 mosaics, its export, and a run of the same seed on the export (same cache, so the
    same teacher)."""
    from tests.test_run import tiny_cfg

    tmp = tmp_path_factory.mktemp("folder")
    source = run(tiny_cfg(tmp, "dataset.factor=2", "ipc=1"), tmp / "source")
    export_run(tmp / "source", tmp / "export", rounds=1)
    read_back = run(folder_cfg(tmp, "selector=folder", f"selector.path={tmp / 'export'}", "ipc=1"), tmp / "read")
    return source, read_back, tmp / "export", tmp / "read"


def test_round_trip_gives_the_runs_accuracy(round_trip) -> None:
    source, read_back, export, run_dir = round_trip
    assert {k: read_back[k] for k in STUDENT} == {k: source[k] for k in STUDENT}
    meta = json.loads((run_dir / "distilled" / "distilled.json").read_text())
    assert (meta["ipc"], meta["factor"], meta["selector"], meta["image_format"]) == (1, 2, "folder", "png")
    manifest = [json.loads(line) for line in (run_dir / "distilled" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 10 and all(r["path"] == "external" and r["layout"] == "full" for r in manifest)
    assert manifest[0]["source"] == str(export.resolve() / "images" / "circle" / "0000.jpg")  # where it came from
    assert (run_dir / "figures" / "distilled_grid.png").is_file()


def test_wrong_teacher_for_stored_labels_is_refused(round_trip) -> None:
    _, _, export, _ = round_trip
    selector = FolderSelector(str(export))
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(FgddError, match="does not give the stored soft labels"):
        selector._check_labels(other, torch.device("cpu"))


def test_missing_folder_and_ipc_mismatch(tmp_path, round_trip) -> None:
    with pytest.raises(ConfigError, match="needs selector.path"):
        FolderSelector(None)
    with pytest.raises(FgddError, match="no such folder"):
        FolderSelector(str(tmp_path / "nowhere"))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):  # composed and built as a run builds it
        cfg = compose(config_name="run", overrides=["selector=folder", f"selector.path={round_trip[2]}", "ipc=10"])
    with pytest.raises(ConfigError, match="holds ipc 1; run with ipc=1"):  # when built: fgdd.check reports it too
        build(cfg.selector)
    with pytest.raises(ConfigError, match="holds ipc 1; run with ipc=1"):
        FolderSelector(str(round_trip[2])).images_needed(10)


@pytest.fixture
def photos(shared_data, tmp_path) -> Path:
    """A plain class-folder set of real ImageNette photos (any size, most not square), 2 per class."""
    train = shared_data("imagenette2-128") / "train"
    for folder in sorted(train.iterdir()):
        (tmp_path / "set" / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:2]:
            shutil.copy(photo, tmp_path / "set" / folder.name / photo.name)
    return tmp_path / "set"


def test_real_photos_become_input_sized_images(photos) -> None:
    classes = sorted(p.name for p in photos.iterdir())
    selector = FolderSelector(str(photos), factor=1)
    assert (selector.ipc, selector.factor) == (2, 1) and selector.images_needed(2).images == 0
    spec = SimpleNamespace(input_size=32)
    selection = selector.select(SimpleNamespace(classes=classes), None, ipc=2, seed=0, spec=spec,
                                device=torch.device("cpu"))
    patch = selection[0][0]
    assert patch.pixels.shape == (3, 32, 32) and patch.path == "external" and patch.layout == "full"
    width, height = patch.source_size
    assert patch.box[2] == patch.box[3] == min(width, height)  # dataset.aspect=crop: the centred square


def test_class_mismatch_and_unequal_ipc(photos) -> None:
    classes = sorted(p.name for p in photos.iterdir())
    selector = FolderSelector(str(photos))
    with pytest.raises(ClassMismatchError, match="external set folders"):
        selector.select(SimpleNamespace(classes=[*classes[:-1], "n99999999"]), None, ipc=2, seed=0,
                        spec=SimpleNamespace(input_size=32), device=torch.device("cpu"))
    next((photos / classes[0]).iterdir()).unlink()
    with pytest.raises(FgddError, match="different numbers of images"):
        FolderSelector(str(photos))
