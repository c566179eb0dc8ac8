"""Atomic, append-only writing under failure: a disk that fills up mid-write, files that must not be replaced, and
the occupancy cache's batch chunks (kept after a crash, checked, set aside when they fail their checksum)."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from fgdd.foreground.occupancy import OccupancyStore, cache_key, measure_occupancy
from fgdd.selection.distilled_set import Patch, write_distilled_set
from fgdd.utils.io import atomic_torch_save, atomic_write_bytes, atomic_write_json, atomic_write_text


class DiskFull:
    """Files opened for writing (whose name contains ``match``) take half of the first write, then fail with
    ENOSPC, as a full disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, match: str = "") -> None:
        self.failures = 0
        real_open = builtins.open

        def open_(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            if any(m in mode for m in "wax") and match in os.fspath(file):
                return _FillingFile(handle, self)
            return handle

        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)  # pathlib's write_text / write_bytes


class _FillingFile:
    def __init__(self, handle, disk: DiskFull) -> None:
        self.handle, self.disk = handle, disk

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        self.disk.failures += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def names(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.parametrize("write", [
    lambda p: atomic_write_bytes(p, b"new" * 1000),
    lambda p: atomic_write_text(p, "new" * 1000),
    lambda p: atomic_write_json(p, {"new": list(range(1000))}),
    lambda p: atomic_torch_save(p, {"w": torch.zeros(100)}),
], ids=["bytes", "text", "json", "torch"])
def test_disk_full_keeps_the_old_file_and_leaves_no_partial_file(write, tmp_path, monkeypatch) -> None:
    target = tmp_path / "out" / "result.json"
    atomic_write_text(target, "old and complete\n")
    disk = DiskFull(monkeypatch)
    with pytest.raises(OSError) as error:
        write(target)
    assert error.value.errno == errno.ENOSPC and disk.failures == 1
    assert target.read_text() == "old and complete\n"  # not truncated, not replaced
    assert names(tmp_path / "out") == {"result.json"}  # the half-written temporary file is gone

    fresh = tmp_path / "out" / "new.json"
    with pytest.raises(OSError):
        write(fresh)
    assert not fresh.exists() and names(tmp_path / "out") == {"result.json"}


def test_exclusive_write_never_replaces_an_existing_file(tmp_path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"first": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_json(target, {"second": 2}, exclusive=True)
    assert json.loads(target.read_text()) == {"first": 1}
    assert names(tmp_path) == {"metrics.json"}


def _patch(label: int, k: int) -> Patch:
    return Patch(label=label, source=f"c{label}/{k}.png", box=(0, 0, 8, 8), source_size=(8, 8), score=float(k),
                 pixels=torch.full((3, 8, 8), k / 10))


def test_disk_full_while_writing_a_distilled_set_leaves_no_set_and_no_staging(tmp_path, monkeypatch) -> None:
    selection = {label: [_patch(label, k) for k in range(2)] for label in range(2)}
    DiskFull(monkeypatch, match="manifest")  # images fit, the manifest does not
    with pytest.raises(OSError, match="No space left"):
        write_distilled_set(tmp_path / "distilled", selection, ["a", "b"], ipc=2, factor=1)
    assert names(tmp_path) == set()  # neither the set nor its staging folder
    monkeypatch.undo()
    write_distilled_set(tmp_path / "distilled", selection, ["a", "b"], ipc=2, factor=1)  # the rerun writes it
    assert (tmp_path / "distilled" / "distilled.json").exists()


# -- the occupancy cache ------------------------------------------------------------------------------------------


class Recorder:
    """Masks with the first ``round(occupancy * pixels)`` pixels set; records what it segmented; may crash."""

    name = "recorder"

    def __init__(self, crash_after: int | None = None, packages: tuple[str, ...] = ()) -> None:
        self.calls: list[str] = []
        self.crash_after = crash_after
        self.packages = packages

    def setup(self, context) -> None:
        pass

    def cache_key(self) -> dict:
        return {"name": self.name}

    def masks(self, images, *, labels, prompts, sources):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise RuntimeError("killed")
        self.calls += list(sources)
        out = []
        for image, source in zip(images, sources):
            mask = np.zeros(image.width * image.height, dtype=bool)
            mask[: int(source.split("/")[1].split(".")[0]) % 5] = True
            out.append(mask.reshape(image.height, image.width))
        return out


class Split:
    def __init__(self, n: int) -> None:
        self.targets = [i % 2 for i in range(n)]

    def load_rgb(self, i: int):
        from PIL import Image

        return Image.new("RGB", (4, 2))

    def relpath(self, i: int) -> str:
        return f"train/{i:04d}.png"


def _store(tmp_path: Path, segmenter=None, **kwargs) -> OccupancyStore:
    return OccupancyStore(tmp_path, cache_key("toy", ["a", "b"], "/data/toy/train", segmenter or Recorder()), **kwargs)


def test_each_batch_is_a_chunk_and_chunks_are_merged_as_the_store_grows(tmp_path) -> None:
    store = _store(tmp_path, max_pending_chunks=1000)
    store.update({"train/0000.png": 0.1})  # nothing consolidated yet: merged at once
    assert store.path.exists() and not list(store.chunk_dir.glob("*.json"))
    store.update({"train/0001.png": 0.2})  # 1 pending >= 1 consolidated: merged
    for k in range(2, 6):
        store.update({f"train/{k:04d}.png": k / 10})
    assert len(list(store.chunk_dir.glob("*.json"))) == 2  # 2 pending < 4 consolidated: kept as chunks
    assert len(json.loads(store.path.read_text())["occupancy"]) == 4
    assert _store(tmp_path).values == store.values  # a new store reads main file + chunks
    store.consolidate()
    assert not list(store.chunk_dir.glob("*.json")) and len(json.loads(store.path.read_text())["occupancy"]) == 6


def test_a_crash_keeps_every_finished_batch_and_the_rerun_segments_only_the_rest(tmp_path) -> None:
    split = Split(40)
    crashing = Recorder(crash_after=24)  # dies in the 4th batch of 8
    with pytest.raises(RuntimeError, match="killed"):
        measure_occupancy(crashing, split, range(40), ["a", "b"], _store(tmp_path, crashing), batch_size=8)
    kept = _store(tmp_path).values
    assert sorted(kept) == sorted(crashing.calls) and len(kept) == 24
    rerun = Recorder()
    values = measure_occupancy(rerun, split, range(40), ["a", "b"], _store(tmp_path, rerun), batch_size=8)
    assert set(rerun.calls) == {split.relpath(i) for i in range(24, 40)}  # only what was missing
    assert values == {split.relpath(i): (i % 5) / 8 for i in range(40)}


def test_a_chunk_that_fails_its_checksum_is_set_aside_and_measured_again(tmp_path) -> None:
    store = _store(tmp_path, max_pending_chunks=1000)
    for k in range(6):  # 4 values in the main file, 2 in chunks (see above)
        store.update({f"train/{k:04d}.png": 0.5})
    first, second = sorted(store.chunk_dir.glob("*.json"))
    first.write_text(first.read_text()[:20])  # truncated
    tampered = json.loads(second.read_text())
    tampered["occupancy"] = {k: 0.9 for k in tampered["occupancy"]}  # edited without its checksum
    second.write_text(json.dumps(tampered))
    reloaded = _store(tmp_path)
    assert sorted(reloaded.values) == [f"train/{k:04d}.png" for k in range(4)]  # the chunks' images: measured again
    assert {p.name for p in store.chunk_dir.iterdir()} == {first.name + ".untrusted", second.name + ".untrusted"}


def test_a_file_set_aside_never_replaces_an_earlier_one(tmp_path) -> None:
    store = _store(tmp_path)
    store.update({"train/0000.png": 0.25})
    for n in range(2):
        store.path.write_text("{ not json")
        assert _store(tmp_path).values == {}
    assert (store.path.parent / (store.path.name + ".untrusted")).read_text() == "{ not json"
    assert (store.path.parent / (store.path.name + ".untrusted.1")).read_text() == "{ not json"


def test_disk_full_during_a_batch_keeps_what_was_stored(tmp_path, monkeypatch) -> None:
    store = _store(tmp_path)
    store.update({"train/0000.png": 0.25})
    DiskFull(monkeypatch)
    with pytest.raises(OSError):
        store.update({"train/0001.png": 0.5})
    monkeypatch.undo()
    assert _store(tmp_path).values == {"train/0000.png": 0.25}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_package_versions_a_segmenter_names_key_the_cache(tmp_path) -> None:
    plain = cache_key("toy", ["a"], "/x", Recorder())
    assert "packages" not in plain  # segmenters that name none keep the key they always had
    keyed = cache_key("toy", ["a"], "/x", Recorder(packages=("torch", "no-such-package-fgdd")))
    assert keyed["packages"] == {"no-such-package-fgdd": "not installed", "torch": metadata.version("torch")}
    assert OccupancyStore(tmp_path, keyed).path != OccupancyStore(tmp_path, plain).path


def test_the_teacher_cache_key_follows_the_image_list_and_the_loader_workers(tmp_path) -> None:
    from fgdd.cache.keyed import key_digest
    from fgdd.teacher import image_list_sha256, teacher_cache_key
    from tests.test_reliability_input import toy, write_folder

    write_folder(tmp_path, per_class=3)
    arch = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 2}

    def key(**kwargs) -> str:
        dataset = toy(tmp_path)  # a new dataset object lists the folders again
        train = dataset.train()
        return key_digest(teacher_cache_key(dataset, train.root, arch, {"epochs": 1}, 0,
                                             images=image_list_sha256(train), **kwargs))

    before = key()
    assert key() == before and key(num_workers=0) == before
    assert key(num_workers=2) != before  # workers draw their own augmentations: another teacher
    (tmp_path / "toy" / "train" / "red" / "000.png").rename(tmp_path / "toy" / "train" / "blue" / "999.png")
    assert key() != before  # an image moved to another class: another teacher, not the cached one
