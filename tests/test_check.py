"""python -m fgdd.check: the report on the real ImageNette 128 px archive, on a broken small copy of it (a stray
folder, a truncated val image, too few images for the ipc asked), and its exit status; nothing is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from fgdd.check import main
from fgdd.run import preflight
from tests.test_dataset_copies import remedies, tree_digest

REPO = Path(__file__).resolve().parents[1]


def check(capsys, *overrides: str) -> tuple[int, str]:
    status = main(list(overrides))
    return status, capsys.readouterr().out


def test_a_wrong_teacher_recipe_choice_exits_with_status_2_naming_the_allowed_values(capsys) -> None:
    assert main(["teacher.recipe.pipeline=fast"]) == 2  # refused while composing: no data is read
    assert "teacher.recipe.pipeline=fast: Invalid value 'fast', expected one of [batched, loader]" in \
        capsys.readouterr().err


def test_the_imagenette_archive_passes_with_its_numbers_in_under_30_s(shared_data, capsys) -> None:
    root = shared_data("imagenette2-128")
    start = time.perf_counter()
    status, out = check(capsys, "dataset=imagenette", f"data_root={root.parent}", "ipc=50", "selector=fgdd")
    assert time.perf_counter() - start < 30  # every header read and every image decoded, 13,394 JPEG files
    assert status == 0, out
    assert "9469 listed" in out and "3925 listed" in out  # the archive's README counts
    assert out.count("unreadable  0") == 2 and out.count("0 not square") == 2
    assert "width 128 / 128 / 128, height 128 / 128 / 128" in out and "RGB 9469" in out
    assert "needs       200 readable train images per class" in out  # ipc 50 x factor 2^2
    assert "OK: a run with these settings finds what it needs" in out


def broken_copy(archive: Path, dest: Path, per_class: int = 12) -> Path:
    """The first ``per_class`` images of every class and split, a stray folder in train/, one truncated val image."""
    for split in ("train", "val"):
        for folder in sorted((archive / split).iterdir()):
            (dest / split / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[:per_class]:
                shutil.copyfile(image, dest / split / folder.name / image.name)
    (dest / "train" / "stray").mkdir()
    shutil.copyfile(next((dest / "train" / "n01440764").iterdir()), dest / "train" / "stray" / "x.JPEG")
    truncated = sorted((dest / "val" / "n02102040").iterdir())[3]
    truncated.write_bytes(truncated.read_bytes()[:2000])
    return truncated


def test_a_broken_copy_fails_with_every_problem_and_remedy_and_passes_once_they_are_followed(shared_data, tmp_path,
                                                                                             capsys) -> None:
    data = tmp_path / "data"
    truncated = broken_copy(shared_data("imagenette2-128"), data / "imagenette2-128")
    before = tree_digest(data)
    args = ["dataset=imagenette", f"data_root={data}"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-m", "fgdd.check", *args, "ipc=5"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300, check=False)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # a run would stop
    assert "10 configured, 11 found: the difference is problem 1 below" in out
    assert "10 expected, 11 got; extra 1: ['stray']" in out
    assert f"val/n02102040/{truncated.name}: OSError: image file is truncated" in out
    assert "validates   on 119 val images (1 unreadable left out)" in out  # 1 of 120: within max_bad_fraction
    assert "2 problem(s)" in out and "ipc=5 needs 20 images per class" in out
    assert "`ipc=3` (the most every class fills)" in out  # ipc 3 x 4 cells = 12 images a class
    assert "`selector.mipc" not in out  # 12 images a class: raising mipc would not help
    assert set(remedies(out)) == {"dataset.allow_extra_folders=true"}

    status, out = check(capsys, *args, "ipc=3", *set(remedies(out)))
    assert status == 0, out
    assert "1 more ignored (allow_extra_folders): ['stray']" in out and "OK" in out
    assert tree_digest(data) == before and not list(tmp_path.glob("outputs"))  # reads only


def test_non_square_images_are_reported_with_what_the_aspect_setting_does(tmp_path, capsys) -> None:
    for split, n in (("train", 4), ("val", 2)):
        for name in ("a", "b"):
            (tmp_path / "mine" / split / name).mkdir(parents=True)
            for k in range(n):
                size = (48, 32) if k % 2 == 0 else (32, 32)
                Image.new("L", size, 90).save(tmp_path / "mine" / split / name / f"{k}.png")
    status, out = check(capsys, "dataset=imagefolder", "dataset.subdir=mine", "dataset.classes=[a,b]",
                        f"data_root={tmp_path}", "dataset.input_size=32", "dataset.factor=1", "ipc=2",
                        "selector=random_real", "dataset.aspect=pad")
    assert status == 0, out
    assert "width 32 / 40 / 48, height 32 / 32 / 32 px (min / median / max); 4 not square" in out
    assert "modes       L 8; formats PNG 8" in out
    assert "dataset.aspect=pad: non-square images get black bars to a square" in out


def test_missing_data_and_unknown_keys_have_their_own_exit_status(tmp_path, capsys) -> None:
    status, out = check(capsys, "dataset=imagewoof", f"data_root={tmp_path / 'nowhere'}")
    assert status == 1 and "no data at" in out and "imagewoof2-128" in out
    assert main(["dataset=imagewoof", "dataset.subdirr=x"]) == 2
    assert "subdirr" in capsys.readouterr().err


def test_download_true_is_never_a_download_from_the_check(tmp_path, capsys, monkeypatch) -> None:
    args = ["dataset=cifar10", f"data_root={tmp_path}", "dataset.download=true"]
    monkeypatch.setenv("FGDD_OFFLINE", "1")
    status, out = check(capsys, *args)
    assert status == 1 and "FGDD_OFFLINE=1 forbids the download" in out
    monkeypatch.delenv("FGDD_OFFLINE")
    monkeypatch.setattr("fgdd.data.download._download_and_extract", lambda *a: pytest.fail("the check downloaded"))
    status, out = check(capsys, *args)
    assert status == 0 and "not on disk yet: a run downloads it" in out
    assert not any(tmp_path.iterdir())


def test_wrong_selector_settings_are_a_config_error_named_with_their_remedy(tmp_path, capsys) -> None:
    status = main(["dataset=shapes", f"data_root={tmp_path}", "dataset.train_per_class=4", "dataset.val_per_class=1",
                   "selector.crop_from=cv2"])
    captured = capsys.readouterr()
    assert status == 2 and not captured.out  # refused before the data is read, as fgdd.run refuses it
    assert "selector.crop_from must be 'tensor' or 'pil', got 'cv2'" in captured.err
    assert not any(tmp_path.iterdir())  # the generated shapes set is not made either


@pytest.mark.parametrize("ipc, message", [("0", "ipc must be at least 1, got 0"),
                                          ("-1", "ipc must be at least 1, got -1"),
                                          ("abc", "ipc must be an integer, got 'abc' (str)")])
def test_an_ipc_the_run_refuses_is_refused_by_the_check_with_the_same_status(ipc, message, shared_data, capsys,
                                                                             tmp_path) -> None:
    args = ["dataset=imagenette", f"data_root={shared_data('imagenette2-128').parent}", f"ipc={ipc}"]
    assert main(args) == 2  # before any image is read: no "OK", no "needs -4 images", no traceback
    captured = capsys.readouterr()
    assert captured.err == f"fgdd.check: {message}\n" and not captured.out
    with pytest.raises(SystemExit) as exit_status:  # what `python -m fgdd.run` does before Hydra starts
        preflight("fgdd.run", "run", [*args, f"output_root={tmp_path}"])
    assert exit_status.value.code == 2 and capsys.readouterr().err == f"fgdd.run: {message}\n"
    assert not any(tmp_path.iterdir())
