"""Grounded SAM 2 with random-weight tiny models (no downloads): shapes, box plumbing, batching, offline errors,
and building SAM 2 inside Hydra apps (single run and multirun)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
if importlib.util.find_spec("sam2") is None:  # find_spec, not import: `import sam2` initialises Hydra globally
    pytest.skip("sam2 is not installed (pip install -e .[segment])", allow_module_level=True)

from fgdd.errors import CheckpointError, ModelUnavailableError  # noqa: E402
from fgdd.foreground.base import SegmentationContext, occupancy, text_prompt  # noqa: E402
from fgdd.foreground.grounded_sam2 import GroundedSAM2Segmenter  # noqa: E402
from fgdd.foreground.sam2_masks import build_sam2_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CPU = SegmentationContext(observer=None, dataset=None, device=torch.device("cpu"))
SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
# Hiera-tiny's layout shrunk for CPU tests: a 128 px input (features 32/16/8), 5 narrow trunk blocks (the global
# block may not open a stage), neck channels = trunk widths (16 doubling per stage, deepest first); the memory
# modules are unused by the image predictor and only shrunk to save memory.
TINY_SAM2 = {
    "model.image_size": 128,
    "model.image_encoder.trunk.embed_dim": 16,
    "model.image_encoder.trunk.stages": [1, 1, 2, 1],
    "model.image_encoder.trunk.global_att_blocks": [3],
    "model.image_encoder.neck.backbone_channel_list": [128, 64, 32, 16],
    "model.memory_attention.num_layers": 1,
    "model.memory_attention.layer.dim_feedforward": 64,
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "horse", "tench", "english", "springer", "dog"]


def tiny_grounding_dino():
    """(model, processor): random Grounding DINO with a small Swin, a 1-layer BERT and a 12-word vocabulary."""
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    # transformers 5 ignores vocab_file= here (every word becomes [UNK]); vocab= works
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)})
    # 96 px keeps the deepest feature map above 1 x 1 (GroupNorm(32) rejects one value per group at batch size 1)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 96, "longest_edge": 128})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=64, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
            out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=64,
        ),
        d_model=32,  # GroupNorm(32, d_model) in the input projections
        encoder_layers=1, decoder_layers=2,  # the decoder needs at least 2 layers
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_n_points=2, decoder_n_points=2, num_queries=10, max_text_len=32,
    )
    torch.manual_seed(0)
    return GroundingDinoForObjectDetection(config).eval(), processor


@pytest.fixture(scope="module")
def models():
    detector, processor = tiny_grounding_dino()
    torch.manual_seed(1)
    sam = build_sam2_model(SAM2_CONFIG, None, TINY_SAM2)
    return detector, processor, sam


@pytest.fixture(scope="module")
def horses(shared_data) -> list[Image.Image]:
    files = sorted((shared_data("weizmann-horse") / "rgb").glob("*.jpg"))[:4]
    return [Image.open(f).convert("RGB") for f in files]  # sizes differ: (800, 590), (250, 197), ...


@pytest.fixture(scope="module")
def saved_models(models, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny models as files: a save_pretrained folder for the detector, a {"model": state_dict} .pt for SAM 2."""
    detector, processor, sam = models
    root = tmp_path_factory.mktemp("gsam-models")
    detector.save_pretrained(root / "gdino")
    processor.save_pretrained(root / "gdino")
    torch.save({"model": sam.state_dict()}, root / "sam2_tiny.pt")
    return root / "gdino", root / "sam2_tiny.pt"


def segmenter(models, **kwargs) -> GroundedSAM2Segmenter:
    detector, processor, sam = models
    seg = GroundedSAM2Segmenter.from_models(detector, processor, sam, **kwargs)
    seg.setup(CPU)
    return seg


def run(seg: GroundedSAM2Segmenter, images: list[Image.Image], prompt: str = "horse") -> list[np.ndarray]:
    n = len(images)
    return seg.masks(images, labels=[0] * n, prompts=[prompt] * n, sources=[f"{i}.jpg" for i in range(n)])


def test_caption_is_lower_case_class_name_with_dot(models, horses, monkeypatch):
    assert text_prompt("English Springer") == "english springer."
    assert text_prompt(" tench. ") == "tench."
    seg = segmenter(models)
    seen: list[str] = []

    def spy(images, captions):
        seen.extend(captions)
        return [np.zeros((0, 4), np.float32) for _ in images]

    monkeypatch.setattr(seg._detector, "boxes", spy)
    seg.masks(horses[:2], labels=[0, 1], prompts=["Horse", "English springer"], sources=["a", "b"])
    assert seen == ["horse.", "english springer."]


def test_masks_are_bool_at_each_image_size(models, horses):
    masks = run(segmenter(models, box_threshold=0.0, text_threshold=0.0), horses)
    assert [m.shape for m in masks] == [(im.height, im.width) for im in horses]
    assert all(m.dtype == np.bool_ for m in masks)
    assert all(m.any() for m in masks)  # threshold 0 keeps every query box, so SAM 2 was prompted


def test_no_detection_gives_empty_mask_without_running_sam(models, horses, monkeypatch):
    seg = segmenter(models, box_threshold=1.0)  # sigmoid scores never exceed 1
    monkeypatch.setattr(seg._masker.predictor, "set_image_batch", lambda *a, **k: pytest.fail("SAM 2 ran"))
    masks = run(seg, horses[:2])
    assert [occupancy(m) for m in masks] == [0.0, 0.0]
    assert [m.shape for m in masks] == [(im.height, im.width) for im in horses[:2]]


def test_detector_boxes_are_xyxy_pixels_of_each_image(models, horses, monkeypatch):
    """A fixed prediction (centre box of half the width and height, certain score) lands at the image's quarter
    points: catches (h, w) swapped in target_sizes and relative coordinates left unscaled."""
    seg = segmenter(models, box_threshold=0.5)
    model = seg._detector.model
    real_forward = model.forward

    def forward(**inputs):
        out = real_forward(**inputs)
        out.pred_boxes = torch.full_like(out.pred_boxes, 0.5)  # (b, q, 4) cx, cy, w, h relative
        out.logits = torch.full_like(out.logits, -20.0)
        out.logits[:, 0, 1] = 20.0  # query 0 certain on the first caption token, the others absent
        return out

    monkeypatch.setattr(model, "forward", forward)
    images = horses[:3]
    boxes = seg._detector.boxes(images, ["horse."] * 3)
    for image, b in zip(images, boxes, strict=True):
        w, h = image.width, image.height
        np.testing.assert_allclose(b, [[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], rtol=1e-5)


def test_injected_boxes_reach_sam_in_pixels_and_masks_are_their_union(models, horses, monkeypatch):
    seg = segmenter(models)
    images = horses[:3]
    w0, h0 = images[0].size
    injected = [
        np.array([[0.1 * w0, 0.2 * h0, 0.6 * w0, 0.9 * h0]], np.float32),  # one box
        np.zeros((0, 4), np.float32),  # no detection
        np.array([[5, 5, 60, 40], [30, 20, 120, 100]], np.float32),  # two boxes
    ]
    monkeypatch.setattr(seg._detector, "boxes", lambda imgs, caps: injected)
    predictor = seg._masker.predictor
    real_set, real_predict = predictor.set_image_batch, predictor.predict_batch
    calls: dict[str, list] = {"sizes": [], "boxes": [], "masks": []}

    def set_spy(image_list):
        calls["sizes"].extend(im.shape[:2] for im in image_list)
        return real_set(image_list)

    def predict_spy(**kwargs):
        assert kwargs["multimask_output"] is False
        calls["boxes"].extend(kwargs["box_batch"])
        result = real_predict(**kwargs)
        calls["masks"].extend(result[0])
        return result

    monkeypatch.setattr(predictor, "set_image_batch", set_spy)
    monkeypatch.setattr(predictor, "predict_batch", predict_spy)
    masks = run(seg, images)
    # only the two prompted images are encoded, each with its own pixel boxes
    assert calls["sizes"] == [(images[0].height, images[0].width), (images[2].height, images[2].width)]
    np.testing.assert_array_equal(calls["boxes"][0], injected[0])
    np.testing.assert_array_equal(calls["boxes"][1], injected[2])
    assert not masks[1].any()
    np.testing.assert_array_equal(masks[0], calls["masks"][0][0] > 0.5)  # (1, h, w) for one box
    np.testing.assert_array_equal(masks[2], (calls["masks"][1][:, 0] > 0.5).any(axis=0))  # (2, 1, h, w): union


def test_batched_equals_one_by_one(models, horses, shared_data):
    nette = sorted((shared_data("imagenette2-128") / "train").glob("*/*.JPEG"))[:2]
    images = horses + [Image.open(f).convert("RGB") for f in nette]
    prompts = ["horse"] * len(horses) + ["tench"] * len(nette)
    kwargs = dict(labels=list(range(len(images))), prompts=prompts, sources=[str(i) for i in range(len(images))])
    # 0.5 keeps a different number of the 10 query boxes per image (5 to 9 with these weights)
    batched = segmenter(models, box_threshold=0.5, text_threshold=0.0, batch_size=8)
    single = segmenter(models, box_threshold=0.5, text_threshold=0.0, batch_size=1)
    boxes_b = batched._detector.boxes(images, [text_prompt(p) for p in prompts])
    boxes_s = single._detector.boxes(images, [text_prompt(p) for p in prompts])
    for b, s in zip(boxes_b, boxes_s, strict=True):
        np.testing.assert_allclose(b, s, atol=1e-3)
    masks_b = batched.masks(images, **kwargs)
    masks_s = single.masks(images, **kwargs)
    for b, s in zip(masks_b, masks_s, strict=True):
        assert b.shape == s.shape
        assert np.count_nonzero(b != s) <= 1e-4 * b.size  # float noise may flip a pixel at the 0-logit boundary


def test_local_files_load_and_give_the_same_masks(models, saved_models, horses):
    gdino, checkpoint = saved_models
    seg = GroundedSAM2Segmenter(
        detector=str(gdino), sam2_checkpoint=str(checkpoint), sam2_overrides=TINY_SAM2, box_threshold=0.0,
        text_threshold=0.0,
    )
    seg.setup(CPU)
    key = seg.cache_key()
    assert key["detector"] == str(gdino) and key["sam2_overrides"] == TINY_SAM2 and key["box_threshold"] == 0.0
    json.dumps(key)
    expected = run(segmenter(models, box_threshold=0.0, text_threshold=0.0), horses[:2])
    for got, want in zip(run(seg, horses[:2]), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_of_another_size_is_refused(saved_models):
    _, checkpoint = saved_models
    with pytest.raises(CheckpointError, match="sam2_config"):
        build_sam2_model(SAM2_CONFIG, checkpoint, {"model.image_size": 128})  # tiny weights, full hiera-tiny trunk


def test_uncached_hub_models_fail_at_once_with_the_fix(saved_models, tmp_path):
    gdino, _ = saved_models
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as detector_error:
        GroundedSAM2Segmenter(cache_dir=str(tmp_path / "empty")).setup(CPU)
    assert time.monotonic() - start < 5
    message = str(detector_error.value)
    assert "IDEA-Research/grounding-dino-tiny" in message
    assert "segmenter.detector=" in message and "segmenter.cache_dir=" in message

    start = time.monotonic()  # the local tiny detector loads, then the SAM 2 checkpoint is missing
    with pytest.raises(ModelUnavailableError) as sam_error:
        GroundedSAM2Segmenter(detector=str(gdino), cache_dir=str(tmp_path / "empty")).setup(CPU)
    assert time.monotonic() - start < 5
    message = str(sam_error.value)
    assert "facebook/sam2.1-hiera-tiny" in message and "sam2.1_hiera_tiny.pt" in message
    assert "segmenter.sam2_checkpoint=" in message and "segmenter.cache_dir=" in message

    with pytest.raises(ModelUnavailableError, match="segmenter.sam2_checkpoint="):
        GroundedSAM2Segmenter(detector=str(gdino), sam2_checkpoint=str(tmp_path / "missing.pt")).setup(CPU)


def _python(code_or_args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FGDD_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, *code_or_args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_importing_sam2_leaves_hydra_free_for_the_host(tmp_path):
    """`import sam2` alone would initialise GlobalHydra, and the host's initialize_config_dir would then fail."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text("value: 3\n")
    code = textwrap.dedent(
        f"""
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from fgdd.foreground.sam2_masks import build_sam2_model, import_sam2
        import_sam2()
        assert not GlobalHydra.instance().is_initialized()
        with initialize_config_dir(config_dir={str(tmp_path / "conf")!r}, version_base=None):
            assert compose(config_name="app").value == 3
            model = build_sam2_model({SAM2_CONFIG!r}, None, {TINY_SAM2!r})  # inside the host's Hydra
            assert model.image_size == 128
            assert compose(config_name="app").value == 3
        print("ok")
        """
    )
    assert _python(["-c", code], tmp_path).stdout.strip().endswith("ok")


def test_segmenter_inside_hydra_multirun(saved_models, horses, tmp_path):
    gdino, checkpoint = saved_models
    image = tmp_path / "horse.png"
    horses[1].save(image)
    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            f"""
            image: {str(image)!r}
            segmenter:
              _target_: fgdd.foreground.grounded_sam2.GroundedSAM2Segmenter
              detector: {str(gdino)!r}
              sam2_checkpoint: {str(checkpoint)!r}
              sam2_overrides: {json.dumps(TINY_SAM2)}
              box_threshold: 0.0
              text_threshold: 0.0
            """
        )
    )
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import json
            import hydra, torch
            from hydra.core.hydra_config import HydraConfig
            from PIL import Image
            from fgdd.foreground.base import SegmentationContext, occupancy

            @hydra.main(version_base=None, config_path=".", config_name="app")
            def main(cfg):
                seg = hydra.utils.instantiate(cfg.segmenter)
                seg.setup(SegmentationContext(observer=None, dataset=None, device=torch.device("cpu")))
                [mask] = seg.masks([Image.open(cfg.image)], labels=[0], prompts=["horse"], sources=["horse.png"])
                out = {"occupancy": occupancy(mask), "threshold": seg.box_threshold}
                with open(HydraConfig.get().runtime.output_dir + "/result.json", "w") as f:
                    json.dump(out, f)

            if __name__ == "__main__":
                main()
            """
        )
    )
    _python(
        ["app.py", "-m", "segmenter.box_threshold=0.0,1.0", f"hydra.sweep.dir={tmp_path / 'multirun'}"], tmp_path
    )
    results = [json.loads((tmp_path / "multirun" / str(job) / "result.json").read_text()) for job in (0, 1)]
    assert results[0]["threshold"] == 0.0 and results[0]["occupancy"] > 0
    assert results[1]["threshold"] == 1.0 and results[1]["occupancy"] == 0.0


def test_bf16_setting_keys_the_cache():
    # bf16 autocast (CUDA only) changes masks at the boundary, so it is part of the occupancy cache key
    assert GroundedSAM2Segmenter().cache_key()["bf16"] is True
    assert GroundedSAM2Segmenter(bf16=False).cache_key()["bf16"] is False
