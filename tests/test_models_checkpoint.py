"""Checkpoint formats (fgdd, RDED, bare, DataParallel), sidecar metadata, strict loading, atomic saving."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from fgdd.errors import CheckpointError
from fgdd.models.checkpoint import (
    ModelMeta,
    build_model,
    load_checkpoint,
    load_state_dict_strict,
    rded_arch,
    save_checkpoint,
    weights_sha256,
)

CONV3 = {"_target_": "fgdd.models.convnet.ConvNet", "depth": 3, "width": 128, "norm": "batch"}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize(("stem", "depth", "size"), [("cifar10_conv3", 3, 32), ("imagenette64_conv4", 4, 64)])
def test_shared_teachers_load_strictly_with_sidecar_meta(shared_teachers: Path, stem: str, depth: int, size: int) -> None:
    state_dict, meta = load_checkpoint(shared_teachers / f"{stem}.pth")
    assert meta is not None
    assert meta.arch == {**CONV3, "depth": depth}
    assert meta.input_size == size and len(meta.classes) == 10 and meta.val_top1 > 0.75
    model = build_model(meta.arch, num_classes=len(meta.classes), input_size=meta.input_size)
    load_state_dict_strict(model, state_dict, stem, meta.arch)


def _small_conv() -> torch.nn.Module:
    return build_model({**CONV3, "width": 8}, num_classes=3, input_size=32)


@pytest.mark.parametrize("layout", ["rded", "bare", "module_prefix", "lightning"])
def test_foreign_formats_give_the_same_state_dict(tmp_path: Path, layout: str) -> None:
    state = _small_conv().state_dict()
    saved = {
        "rded": {"model": state},
        "bare": state,
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
        "lightning": {"state_dict": state, "epoch": 3},
    }[layout]
    torch.save(saved, tmp_path / "net.pth")
    loaded, meta = load_checkpoint(tmp_path / "net.pth")
    assert meta is None  # no fgdd_meta, no sidecar
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_sidecar_supplies_meta_for_an_rded_checkpoint(tmp_path: Path, shared_teachers: Path) -> None:
    shutil.copy(shared_teachers / "cifar10_conv3.pth", tmp_path / "t.pth")
    sidecar = json.loads((shared_teachers / "cifar10_conv3.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**sidecar, "arch": "conv5", "norm": "instance", "width": 64}))
    _, meta = load_checkpoint(tmp_path / "t.pth")
    assert meta.arch == {"_target_": "fgdd.models.convnet.ConvNet", "depth": 5, "width": 64, "norm": "instance"}
    assert meta.recipe["epochs_done"] == 15 and meta.classes[0] == "airplane"


def test_roundtrip_keeps_weights_and_meta_and_leaves_no_temp_files(tmp_path: Path) -> None:
    model = _small_conv()
    meta = ModelMeta(arch={**CONV3, "width": 8}, input_size=32, mean=MEAN, std=STD, classes=["a", "b", "c"],
                     val_top1=0.5, dataset="toy", recipe={"epochs": 2})  # fmt: skip
    save_checkpoint(tmp_path / "out" / "m.pth", model.state_dict(), meta)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.pth"]
    state, loaded = load_checkpoint(tmp_path / "out" / "m.pth")
    assert loaded == meta
    fresh = build_model(loaded.arch, num_classes=3, input_size=32)
    load_state_dict_strict(fresh, state, "m.pth", loaded.arch)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_failed_save_leaves_neither_file_nor_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:  # fails after the temporary file was written, before the rename
        raise OSError("disk full")

    monkeypatch.setattr("fgdd.utils.io.os.fsync", disk_full)
    meta = ModelMeta(arch=CONV3, input_size=32, mean=MEAN, std=STD, classes=["a"])
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "m.pth", _small_conv().state_dict(), meta)
    assert list(tmp_path.iterdir()) == []


def test_wrong_arch_lists_missing_and_unexpected_keys(shared_teachers: Path) -> None:
    state, _ = load_checkpoint(shared_teachers / "imagenette64_conv4.pth")
    model = build_model(CONV3, num_classes=10, input_size=64)  # depth 3 instead of 4
    with pytest.raises(CheckpointError, match=r"unexpected keys: layers\.conv\.3\.weight.*Set the teacher's arch"):
        load_state_dict_strict(model, state, "imagenette64_conv4.pth", CONV3)
    instance = {**CONV3, "norm": "instance"}
    with pytest.raises(CheckpointError, match="running_mean"):
        load_state_dict_strict(build_model(instance, 10, 32), load_checkpoint(shared_teachers / "cifar10_conv3.pth")[0],
                               "cifar10_conv3.pth", instance)  # fmt: skip


def test_unreadable_or_missing_checkpoints_are_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_checkpoint(tmp_path / "nostate.pth")


def test_rded_arch_names() -> None:
    assert rded_arch("conv6") == {**CONV3, "depth": 6}
    assert rded_arch("resnet18_modified") == {"_target_": "fgdd.models.resnet.resnet", "depth": 18, "low_res_stem": True}
    assert rded_arch("efficientNet-b0")["_target_"].endswith("efficientnet_b0")
    with pytest.raises(CheckpointError, match="unknown RDED arch"):
        rded_arch("alexnet")


def _fixed_model() -> nn.Module:
    # weights set from linspace (no RNG): the same bytes on every machine and torch version
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        for i, tensor in enumerate(model.state_dict().values()):
            if tensor.is_floating_point():
                tensor.copy_(torch.linspace(-1.0, 1.0, tensor.numel()).view_as(tensor) * (i + 1))
            else:
                tensor.fill_(7 + i)  # num_batches_tracked, a 0-d int64 buffer
    return model


def test_weights_hash_keeps_the_digests_existing_cache_keys_hold() -> None:
    # the digests the two hashes gave before they had one home (cache/teacher_accuracy.py's weights_sha256 and
    # foreground/cam.py's weights_fingerprint): teacher_accuracy/, full_real/ and occupancy/ entries keep their keys
    model = _fixed_model()
    assert weights_sha256(model) == "0d6fa779ef845e9102e5707fd75a70601f4c31548b2c69916a3493a9cb1a57bb"
    assert weights_sha256(model, "state_dict") == "49b1e5892e3bc09d39e8114e3a287e2be8b8fe50c303f1722e07baa2a889a91b"
