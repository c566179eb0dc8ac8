"""Users' own copies of a dataset, built small here: a stray folder, extra wnids, classes=null on them, unreadable
images, a subset of the classes. Every message that names a remedy is followed, through the real config (a
declared key, no `+`), and must then work; no user file changes on the way (hashes before and after)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image

from fgdd.check import main as check_main
from fgdd.config import build, build_dataset, register_resolvers
from fgdd.data.base import what_is_at
from fgdd.data.tinyimagenet import OFFICIAL_WNIDS_SHA256, wnids_sha256
from fgdd.errors import ClassMismatchError, ConfigError, CorruptImageError
from fgdd.pipeline import check_enough_images, ipc_shortfall
from fgdd.run import CONF_DIR
from fgdd.selection import RandomRealSelector, RDEDSelector
from fgdd.selection.base import ImageNeed
from tests.test_data_cifar import write_fake_cifar10

register_resolvers()
EXTRA_WNIDS = ["n00000001", "n99999999"]  # a widely shared Tiny-ImageNet copy lists two wnids beyond the 200


def run_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="run", overrides=list(overrides))


def remedies(message: str) -> list[str]:
    """The `dataset.<key>=<value>` settings a message tells the user to set."""
    return [m.rstrip(".") for m in re.findall(r"(dataset\.[\w.]+=[^\s`,;)]+)", message)]


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def png(value: int, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value % 256, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def truncate(path: Path) -> Path:
    return write(path, path.read_bytes()[:40])  # the PNG header survives, the pixels do not


# -- copies in each dataset's layout -------------------------------------------------------------------------------

# dataset option -> overrides that point it at a copy under data_root, the copy's folder, and its train/val folders
FOLDER_DATASETS = {
    "imagenette": ([], "imagenette2-128", ("train", "val")),
    "imagewoof": ([], "imagewoof2-128", ("train", "val")),
    "imagefolder": (["dataset.subdir=mine", "dataset.classes=[apple,pear,plum]"], "mine", ("train", "val")),
    "imagenet1k": ([], "imagenet", ("train", "val")),
    "cifar10": ([], "cifar10", ("train", "test")),
}
ALL = [*FOLDER_DATASETS, "tinyimagenet"]


def dataset_overrides(option: str, data_root: Path, *more: str) -> list[str]:
    extra = FOLDER_DATASETS[option][0] if option in FOLDER_DATASETS else []
    return [f"dataset={option}", f"data_root={data_root}", *extra, *more]


def build_copy(option: str, data_root: Path, classes: list[str], per_class: int = 2, val_per_class: int = 2,
               extra: tuple[str, ...] = (), image: Callable[[int], bytes] = png) -> list[Path]:
    """A copy of ``option``'s layout holding ``classes`` (+ ``extra`` classes, as a stray folder or extra wnids),
    each file ``image(k)``; returns the val image files in sample order."""
    everything = sorted([*classes, *extra])
    if option == "tinyimagenet":
        top = data_root / "tiny-imagenet-200"
        write(top / "wnids.txt", "\n".join(everything).encode() + b"\n")
        for wnid in everything:
            for k in range(per_class):
                write(top / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", image(k))
        lines, val = [], []
        for label, wnid in enumerate(everything):
            for k in range(val_per_class):
                name = f"val_{label * val_per_class + k}.JPEG"
                path = write(top / "val" / "images" / name, image(label + k))
                lines.append(f"{name}\t{wnid}\t0\t0\t7\t7")
                if wnid in classes:
                    val.append(path)
        write(top / "val" / "val_annotations.txt", ("\n".join(lines) + "\n").encode())
        return val
    _, subdir, (train_dir, val_dir) = FOLDER_DATASETS[option]
    val = []
    for name in everything:
        for k in range(per_class):
            write(data_root / subdir / train_dir / name / f"{k:03d}.png", image(k))
        for k in range(val_per_class):
            path = write(data_root / subdir / val_dir / name / f"{k:03d}.png", image(100 + k))
            if name in classes:
                val.append(path)
    return val


def configured_classes(option: str, data_root: Path) -> list[str]:
    return list(run_config(*dataset_overrides(option, data_root)).dataset.classes)


# -- a stray folder / extra wnids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ALL)
def test_a_stray_class_stops_with_a_remedy_that_works_for_every_dataset(option, tmp_path, caplog) -> None:
    data = tmp_path / "data"
    classes = configured_classes(option, data)
    build_copy(option, data, classes, extra=("stray",) if option != "tinyimagenet" else tuple(EXTRA_WNIDS))
    before = tree_digest(data)

    with pytest.raises(ClassMismatchError) as error:
        build_dataset(run_config(*dataset_overrides(option, data)).dataset).train()
    assert remedies(str(error.value)) == ["dataset.allow_extra_folders=true"]

    dataset = build_dataset(run_config(*dataset_overrides(option, data, *remedies(str(error.value)))).dataset)
    with caplog.at_level(logging.WARNING):
        train, val = dataset.train(), dataset.val()
    ignored = ["stray"] if option != "tinyimagenet" else EXTRA_WNIDS
    assert train.classes == classes and len(train) == 2 * len(classes) and len(val) == 2 * len(classes)
    assert dataset.record()["splits"]["train"]["ignored_classes"] == ignored  # what the run folder's dataset.json keeps
    assert any(all(c in r.getMessage() for c in ignored) for r in caplog.records if r.levelno == logging.WARNING)
    if option == "tinyimagenet":  # val images of the extra wnids are left out too, and recorded
        assert dataset.record()["splits"]["val"]["ignored_classes"] == EXTRA_WNIDS
    assert tree_digest(data) == before


def test_classes_null_on_a_tiny_imagenet_copy_with_extra_wnids_is_refused_and_both_remedies_work(tmp_path) -> None:
    data = tmp_path / "data"
    official = configured_classes("tinyimagenet", data)
    assert wnids_sha256(official) == OFFICIAL_WNIDS_SHA256  # the constant is the config's list
    build_copy("tinyimagenet", data, official, per_class=1, val_per_class=1, extra=tuple(EXTRA_WNIDS))
    before = tree_digest(data)

    with pytest.raises(ConfigError) as error:  # not 202 classes silently trained under the name tinyimagenet
        build_dataset(run_config(*dataset_overrides("tinyimagenet", data, "dataset.classes=null")).dataset)
    message = str(error.value)
    assert "202 wnids" in message and "tinyimagenet" in message
    assert remedies(message) == ["dataset.allow_extra_folders=true", "dataset.name=tinyimagenet-202"]

    subset = build_dataset(run_config(*dataset_overrides("tinyimagenet", data, remedies(message)[0])).dataset)
    assert subset.name == "tinyimagenet" and subset.classes == official and len(subset.val()) == 200
    renamed = build_dataset(run_config(*dataset_overrides("tinyimagenet", data, "dataset.classes=null",
                                                          remedies(message)[1])).dataset)
    assert renamed.name == "tinyimagenet-202" and len(renamed.classes) == 202 and len(renamed.val()) == 202
    assert tree_digest(data) == before


def test_classes_null_on_the_official_tiny_imagenet_list_keeps_its_name(tmp_path) -> None:
    data = tmp_path / "data"
    build_copy("tinyimagenet", data, configured_classes("tinyimagenet", data), per_class=1, val_per_class=1)
    dataset = build_dataset(run_config(*dataset_overrides("tinyimagenet", data, "dataset.classes=null")).dataset)
    assert dataset.name == "tinyimagenet" and len(dataset.classes) == 200


@pytest.mark.parametrize("option", ["imagenette", "cifar10"])
def test_classes_null_on_a_folder_dataset_is_refused_with_a_remedy_that_works(option, tmp_path) -> None:
    data = tmp_path / "data"
    classes = configured_classes(option, data)
    build_copy(option, data, classes, extra=("stray",))
    with pytest.raises(ConfigError) as error:  # never "whatever folders are there" under the dataset's name
        build_dataset(run_config(*dataset_overrides(option, data, "dataset.classes=null")).dataset)
    assert remedies(str(error.value)) == ["dataset.allow_extra_folders=true"]
    dataset = build_dataset(run_config(*dataset_overrides(option, data, *remedies(str(error.value)))).dataset)
    assert dataset.train().classes == classes


def test_a_subset_of_pickled_cifar10_classes_is_read_with_its_labels_renumbered(tmp_path) -> None:
    data = tmp_path / "data"
    write_fake_cifar10(data / "cifar10" / "cifar-10-batches-py")
    before = tree_digest(data)
    overrides = dataset_overrides("cifar10", data, "dataset.classes=[cat,dog]")
    with pytest.raises(ClassMismatchError) as error:
        build_dataset(run_config(*overrides).dataset).train()
    assert remedies(str(error.value)) == ["dataset.allow_extra_folders=true"]
    dataset = build_dataset(run_config(*overrides, *remedies(str(error.value))).dataset)
    train, val = dataset.train(), dataset.val()
    assert train.classes == ["cat", "dog"] and sorted(set(train.targets)) == [0, 1]
    for i in range(len(train)):  # the fake pixels carry the archive label: cat = 3, dog = 5
        assert train.load_rgb(i).getpixel((0, 0))[1] == (3, 5)[train.targets[i]]
    assert len(val) == 3 and val.ignored_classes == ["airplane", "automobile", "bird", "deer", "frog", "horse", "ship",
                                                     "truck"]
    assert tree_digest(data) == before


# -- unreadable images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ALL)
def test_unreadable_val_images_are_left_out_never_replaced_and_the_remedy_works(option, tmp_path, caplog) -> None:
    data = tmp_path / "data"
    classes = configured_classes(option, data)
    val_files = build_copy(option, data, classes, per_class=1, val_per_class=2)
    # just over max_bad_fraction=0.01, each the first val image of its class (every class keeps one)
    bad = [truncate(path) for path in val_files[0::2][: len(val_files) // 100 + 1]]
    before = tree_digest(data)

    with pytest.raises(CorruptImageError) as error:
        build_dataset(run_config(*dataset_overrides(option, data)).dataset).val()
    assert all(p.name in str(error.value) for p in bad)
    [fix] = remedies(str(error.value))
    assert fix.startswith("dataset.max_bad_fraction=")

    dataset = build_dataset(run_config(*dataset_overrides(option, data, fix)).dataset)
    with caplog.at_level(logging.WARNING):
        val = dataset.val()
    assert len(val) == len(val_files) - len(bad)  # left out, not replaced by another image of the class
    names = [val.samples[i][0] for i in range(len(val))]
    assert len(set(names)) == len(names) and not set(bad) & set(names)
    items = [val[i] for i in range(len(val))]  # every remaining image reads, each once
    assert [label for _, label in items] == val.targets
    left_out = dataset.record()["splits"]["val"]["unreadable_left_out"]
    assert sorted(left_out) == sorted(p.relative_to(val.base).as_posix() for p in bad)
    assert all(any(p.name in r.getMessage() for r in caplog.records) for p in bad)
    assert tree_digest(data) == before


def test_a_val_image_that_becomes_unreadable_during_a_run_is_an_error_not_a_substitute(tmp_path) -> None:
    data = tmp_path / "data"
    val_files = build_copy("imagefolder", data, ["apple", "pear", "plum"])
    val = build_dataset(run_config(*dataset_overrides("imagefolder", data)).dataset).val()
    truncate(val_files[0])
    with pytest.raises(CorruptImageError, match=val_files[0].name):
        val[0]


def test_the_train_split_limit_message_leads_to_a_setting_that_works(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    build_copy("imagefolder", data, ["apple", "pear", "plum"], per_class=10)
    for k in range(2):
        truncate(data / "mine" / "train" / "pear" / f"{k:03d}.png")
    overrides = dataset_overrides("imagefolder", data)
    train = build_dataset(run_config(*overrides).dataset).train()
    with pytest.raises(CorruptImageError) as error:  # stops at the first file over the limit: the count is partial
        [train[i] for i in range(len(train))]
    assert "python -m fgdd.check" in str(error.value)
    assert check_main(overrides) == 1  # the message's advice: the check lists them all, with the setting
    [fix] = set(remedies(capsys.readouterr().out))
    assert fix == "dataset.max_bad_fraction=0.067"  # 2 of 30
    train = build_dataset(run_config(*overrides, fix).dataset).train()
    assert len([train[i] for i in range(len(train))]) == 30  # train images are still replaced (teacher batches)


# -- limits per class and the ipc message ---------------------------------------------------------------------------


def test_limit_per_class_keeps_the_first_images_of_every_class(tmp_path) -> None:
    data = tmp_path / "data"
    build_copy("imagefolder", data, ["apple", "pear", "plum"], per_class=5, val_per_class=4)
    dataset = build_dataset(run_config(*dataset_overrides("imagefolder", data, "dataset.limit_per_class.train=2",
                                                          "dataset.limit_per_class.val=1")).dataset)
    train, val = dataset.train(), dataset.val()
    assert [train.relpath(i) for i in range(len(train))] == [f"train/{c}/{k:03d}.png" for c in ("apple", "pear", "plum")
                                                            for k in range(2)]
    assert len(val) == 3


def test_limit_per_class_slices_pickled_cifar_with_its_pixels(tmp_path) -> None:
    data = tmp_path / "data"
    write_fake_cifar10(data / "cifar10" / "cifar-10-batches-py")
    dataset = build_dataset(run_config(*dataset_overrides("cifar10", data, "dataset.limit_per_class.train=1")).dataset)
    train = dataset.train()
    assert len(train) == 10 and train.targets == list(range(10))
    for i in range(10):  # the pixels follow the samples kept: the fake images carry their label and archive row
        assert train.load_rgb(i).getpixel((0, 0))[1] == i
        row = int(train.relpath(i).split("/")[1])  # archive position: batch row // 4 + 1, index row % 4 in it
        assert train.load_rgb(i).getpixel((0, 0))[0] == 10 * (row // 4 + 1) + row % 4


def test_debug_fast_slices_every_dataset_and_a_command_line_ipc_wins() -> None:
    cfg = run_config("dataset=imagenette", "debug=fast")
    assert cfg.ipc == 1 and dict(cfg.dataset.limit_per_class) == {"train": 10, "val": 5}
    assert cfg.teacher.recipe.epochs == 2 and cfg.evaluator.epochs == 2
    assert run_config("dataset=tinyimagenet", "debug=fast", "ipc=10").ipc == 10


def rded(mipc: int) -> RDEDSelector:
    return RDEDSelector(factor=2, mipc=mipc)


def test_the_ipc_message_advises_raising_mipc_only_where_mipc_is_the_limit() -> None:
    classes, counts = ["a", "b"], {0: 30, 1: 500}
    short_class = ipc_shortfall(rded(mipc=300), 10, counts, classes)
    assert "'a' 30 (10 short)" in short_class and "`selector.mipc" not in short_class  # 30 < 40: mipc is not it
    assert "ipc=10 needs 40 images per class (rded: ipc x factor^2 = 10 x 2^2, one patch per image)" in short_class
    assert "`ipc=7` (the most every class fills)" in short_class and "add images to these classes" in short_class
    short_mipc = ipc_shortfall(rded(mipc=20), 10, {0: 40, 1: 500}, classes)
    assert "`selector.mipc=40` (now 20)" in short_mipc and "min(images, selector.mipc=20)" in short_mipc
    assert "add images" not in short_mipc  # every class has 40: more images would change nothing
    assert ipc_shortfall(rded(mipc=40), 10, counts, classes) is not None
    assert ipc_shortfall(rded(mipc=40), 7, counts, classes) is None  # 28 needed
    assert ipc_shortfall(rded(mipc=40), 3, {0: 2, 1: 5}, classes).endswith(  # no ipc >= 1 fills 4 cells from 2 images
        "What works: `selector=random_real ipc=2` (whole images, no mosaic: 2 per class; it reads no selector.mipc); "
        "or add images to these classes")
    sliced = ipc_shortfall(rded(mipc=300), 10, {0: 10, 1: 10}, classes, limit_per_class=10,
                           before_limit={0: 900, 1: 45})
    assert "`dataset.limit_per_class.train=40` (now 10" in sliced and "add images" not in sliced
    too_few = ipc_shortfall(rded(mipc=300), 10, {0: 10, 1: 10}, classes, limit_per_class=10,
                            before_limit={0: 900, 1: 12})  # 'b' has 12 images in all: no limit gives it 40
    assert "limit_per_class" not in too_few and "`ipc=2`" in too_few
    both = ipc_shortfall(rded(mipc=8), 3, {0: 10, 1: 10}, classes, limit_per_class=10, before_limit={0: 90, 1: 90})
    assert "`selector.mipc=12` (now 8) with `dataset.limit_per_class.train=12` (now 10" in both


@pytest.mark.parametrize("selector, segmenter, needed, pool", [
    ("rded", "cam", 40, 300), ("fgdd", "grounded_sam2", 40, 300), ("fgdd", "saliency", 40, 300),
    ("random_real", "cam", 10, None),
])
def test_every_selector_config_says_what_it_needs_and_building_it_loads_nothing(
    selector: str, segmenter: str, needed: int, pool: int | None, tmp_path
) -> None:
    cfg = run_config("dataset=imagenette", f"selector={selector}", f"segmenter={segmenter}", "ipc=10",
                     f"data_root={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}",
                     f"output_root={tmp_path / 'out'}")
    need = build(cfg.selector).images_needed(cfg.ipc)  # what the run's first check and fgdd.check do
    assert (need.images, need.pool) == (needed, pool)  # imagenette: factor 2, 2x2 cells an image
    assert not list(tmp_path.iterdir())  # no model, no weights, no folder: the constructors only keep settings


def test_each_selector_says_how_many_images_a_class_needs() -> None:
    assert RDEDSelector(factor=2, mipc=300).images_needed(10) == ImageNeed(
        images=40, rule="ipc x factor^2 = 10 x 2^2, one patch per image", pool=300)
    whole = RandomRealSelector().images_needed(10)  # whole images, no mosaic, every image of the class a candidate
    assert (whole.images, whole.pool) == (10, None)
    assert ipc_shortfall(RandomRealSelector(), 10, {0: 9, 1: 500}, ["a", "b"]) == (
        "ipc=10 needs 10 images per class (random_real: ipc = 10 whole images), but 1 of 2 classes has fewer "
        "(images): 'a' 9 (1 short). What works: `ipc=9` (the most every class fills); or add images to these classes")


# -- copies of the real ImageNette archive (and its JPEG files in other layouts) ----------------------------------


def imagenette_copy(archive: Path, data: Path, train: Mapping[str, int], val: int = 2) -> Path:
    """The first ``train[class]`` train and ``val`` val images of every class of the real ImageNette archive, in its
    layout under ``data``; returns the copy's folder."""
    copy = data / "imagenette2-128"
    for split, counts in (("train", train), ("val", dict.fromkeys(train, val))):
        for name, n in counts.items():
            (copy / split / name).mkdir(parents=True)
            for path in sorted((archive / split / name).iterdir())[:n]:
                shutil.copyfile(path, copy / split / name / path.name)
    return copy


def check(capsys, *overrides: str) -> tuple[int, str]:
    status = check_main(list(overrides))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def what_works(output: str) -> list[list[str]]:
    """The remedies of an ipc message, each as the settings it names (["selector=random_real", "ipc=2"] ...)."""
    remedies = output.split("What works: ")[1].splitlines()[0].split("; or ")
    return [[part for setting in re.findall(r"`([^`]+)`", remedy) for part in setting.split()] for remedy in remedies]


def test_an_ipc_no_selector_setting_can_fill_names_the_short_class_and_what_works(shared_data, tmp_path,
                                                                                   capsys) -> None:
    archive = shared_data("imagenette2-128")
    data = tmp_path / "data"
    classes = configured_classes("imagenette", data)
    short = classes[3]
    copy = imagenette_copy(archive, data, {c: 3 if c == short else 30 for c in classes})
    # the user's command: ipc is 1 already and the slice (20) is above the class's 3 images, so neither "lower ipc"
    # nor "raise dataset.limit_per_class.train" can work
    asked = ["dataset=imagenette", f"data_root={data}", "ipc=1", "dataset.limit_per_class.train=20"]
    status, out = check(capsys, *asked)
    assert status == 1
    assert "ipc=1 needs 4 images per class" in out and "1 of 10 classes has fewer" in out
    assert f"'{short}' 3 (1 short)" in out
    assert what_works(out) == [["selector=random_real"], []]  # and "add images to these classes"
    assert "`selector=random_real` (whole images, no mosaic: 1 per class; it reads no selector.mipc); or add images to " \
           "these classes" in out
    cfg = run_config(*asked)
    dataset = build_dataset(cfg.dataset)
    with pytest.raises(ConfigError) as error:  # the run's own check before any stage: the same message
        check_enough_images(build(cfg.selector), cfg.ipc, dataset.train(), list(dataset.classes),
                            limit_per_class=cfg.dataset.limit_per_class.train)
    assert str(error.value) in out

    assert check(capsys, *asked, "selector=random_real")[0] == 0
    added = sorted((archive / "train" / short).iterdir())[3]
    shutil.copyfile(added, copy / "train" / short / added.name)
    assert check(capsys, *asked)[0] == 0


@pytest.mark.parametrize("cause, asked, named", [
    ("the slice", ["debug=fast", "ipc=3"], "dataset.limit_per_class.train=12"),  # debug=fast keeps 10 of 14
    ("the pool", ["ipc=3", "selector.mipc=8"], "selector.mipc=12"),
])
def test_every_remedy_the_ipc_message_names_works(cause, asked, named, shared_data, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    imagenette_copy(shared_data("imagenette2-128"), data, dict.fromkeys(configured_classes("imagenette", data), 14))
    args = ["dataset=imagenette", f"data_root={data}", *asked]
    status, out = check(capsys, *args)
    assert status == 1 and "10 of 10 classes have fewer" in out
    assert what_works(out) == [["ipc=2"], ["selector=random_real"], [named]]  # 14 images a class: none to add
    for settings in what_works(out):
        # another selector: the settings of this one go, as its message says ("it reads no selector.mipc")
        kept = [a for a in args if not a.startswith("selector.")] if "selector=random_real" in settings else args
        status, followed = check(capsys, *kept, *settings)
        assert status == 0, f"{cause}: {settings} does not work:\n{followed}"


def test_a_data_root_that_is_a_file_or_missing_says_so_and_where_it_came_from(shared_data, tmp_path, capsys,
                                                                               monkeypatch) -> None:
    image = sorted((shared_data("imagenette2-128") / "val" / "n01440764").iterdir())[0]  # a real JPEG file
    monkeypatch.delenv("FGDD_DATA_DIR", raising=False)
    status, out = check(capsys, "dataset=imagenette", f"data_root={image}")
    assert status == 1 and f"{image} is a file, not a folder" in out
    assert f"comes from the command line (`data_root={image}`)" in out and "taken from the config" not in out

    monkeypatch.setenv("FGDD_DATA_DIR", str(image))
    status, out = check(capsys, "dataset=imagenette")
    assert f"{image} is a file, not a folder" in out and f"data root {image} comes from $FGDD_DATA_DIR" in out

    nowhere = tmp_path / "nowhere"
    status, out = check(capsys, "dataset=imagenette", f"dataset.root={nowhere}")
    assert f"{nowhere / 'imagenette2-128' / 'train'} does not exist (the deepest folder that does: {tmp_path})" in out
    assert f"comes from the command line (`dataset.root={nowhere}`)" in out

    monkeypatch.delenv("FGDD_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    status, out = check(capsys, "dataset=imagenette")
    assert f"comes from the config's default (data under the working directory {tmp_path}; $FGDD_DATA_DIR is not " \
           "set)" in out


def test_a_data_folder_that_cannot_be_read_says_so(shared_data, tmp_path, monkeypatch) -> None:
    data = tmp_path / "data"
    copy = imagenette_copy(shared_data("imagenette2-128"), data, {"n01440764": 1})
    # these tests may run as root, who reads every folder: the permission is what os.access reports
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != copy / "train")
    assert what_is_at(copy / "train") == f"{copy / 'train'} is a folder that cannot be read (permission denied)"


def test_a_tiny_imagenet_copy_with_extra_wnids_prints_the_difference_once(shared_data, tmp_path, capsys) -> None:
    jpegs = [p.read_bytes() for p in sorted((shared_data("imagenette2-128") / "val" / "n01440764").iterdir())[:4]]
    data = tmp_path / "data"
    official = configured_classes("tinyimagenet", data)
    build_copy("tinyimagenet", data, official, per_class=1, val_per_class=1, extra=tuple(EXTRA_WNIDS),
               image=lambda k: jpegs[k % len(jpegs)])
    args = ["dataset=tinyimagenet", f"data_root={data}", "ipc=1"]
    status, out = check(capsys, *args)
    assert status == 1
    assert out.count("200 expected, 202 got; extra 2: ['n00000001', 'n99999999']") == 1
    assert out.count("200 configured, 202 found: the difference is problem 1 below") == 2  # train and val
    assert official[100] not in out  # neither list in full
    with pytest.raises(ClassMismatchError) as error:  # what the run prints
        build_dataset(run_config(*args).dataset).train()
    assert official[100] not in str(error.value) and len(str(error.value)) < 600
    [fix] = set(remedies(out))
    assert check(capsys, *args, fix)[0] == 0


def test_a_class_list_in_another_order_names_the_first_position_that_differs(shared_data, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    classes = configured_classes("imagenette", data)
    imagenette_copy(shared_data("imagenette2-128"), data, dict.fromkeys(classes, 1))
    swapped = [classes[0], classes[2], classes[1], *classes[3:]]
    status, out = check(capsys, "dataset=imagenette", f"data_root={data}", f"dataset.classes=[{','.join(swapped)}]")
    assert status == 1
    assert f"10 expected, 10 got; another order from position 1: expected '{classes[2]}', got '{classes[1]}'" in out
