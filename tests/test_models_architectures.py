"""Every architecture builds from its arch config and maps (n, 3, s, s) to (n, num_classes)."""

from __future__ import annotations

import sys
import urllib.error

import pytest
import torch
from torch import nn

from fgdd.errors import ConfigError, ModelUnavailableError
from fgdd.models import pretrained
from fgdd.models.checkpoint import build_model
from fgdd.models.convnet import ConvNet

NUM_CLASSES = 7

# size-agnostic torchvision models: built once, run at 32 and 64 px
TORCHVISION_ARCHS = {
    "resnet18": {"_target_": "fgdd.models.resnet.resnet", "depth": 18},
    "resnet18_modified": {"_target_": "fgdd.models.resnet.resnet", "depth": 18, "low_res_stem": True},
    "resnet50": {"_target_": "fgdd.models.resnet.resnet", "depth": 50},
    "resnet101": {"_target_": "fgdd.models.resnet.resnet", "depth": 101},
    "mobilenet_v2": {"_target_": "fgdd.models.torchvision_zoo.mobilenet_v2"},
    "efficientnet_b0": {"_target_": "fgdd.models.torchvision_zoo.efficientnet_b0"},
    "vgg11": {"_target_": "fgdd.models.torchvision_zoo.vgg11"},
    "vgg11_bn_compact": {"_target_": "fgdd.models.torchvision_zoo.vgg11", "batch_norm": True, "compact_head": True},
}


def _logits(model: nn.Module, size: int) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return model(torch.randn(2, 3, size, size))


@pytest.mark.parametrize("name", sorted(TORCHVISION_ARCHS))
def test_torchvision_arch_forward(name: str) -> None:
    model = build_model(TORCHVISION_ARCHS[name], num_classes=NUM_CLASSES, input_size=32)
    for size in (32, 64):
        assert _logits(model, size).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize(("depth", "size"), [(3, 32), (3, 64), (4, 64), (5, 128)])
def test_convnet_forward(depth: int, size: int, norm: str) -> None:
    arch = {"_target_": "fgdd.models.convnet.ConvNet", "depth": depth, "width": 16, "norm": norm}
    model = build_model(arch, num_classes=NUM_CLASSES, input_size=size)
    assert _logits(model, size).shape == (2, NUM_CLASSES)
    assert model.classifier.in_features == 16 * (size >> depth) ** 2


def test_convnet_parameter_names_follow_rded() -> None:
    names = set(ConvNet(num_classes=10, input_size=32, depth=2, width=8).state_dict())
    assert names == {
        "layers.conv.0.weight", "layers.conv.0.bias", "layers.conv.1.weight", "layers.conv.1.bias",
        *(f"layers.norm.{i}.{p}" for i in (0, 1)
          for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
        "classifier.weight", "classifier.bias",
    }  # fmt: skip
    assert not any(".norm." in k for k in ConvNet(num_classes=10, input_size=32, depth=2, norm="none").state_dict())
    instance = ConvNet(num_classes=10, input_size=32, depth=1, width=8, norm="instance")
    assert isinstance(instance.layers["norm"][0], nn.GroupNorm) and instance.layers["norm"][0].num_groups == 8


def test_convnet_rejects_inputs_smaller_than_its_pooling() -> None:
    with pytest.raises(ConfigError, match="input_size >= 64"):
        build_model({"_target_": "fgdd.models.convnet.ConvNet", "depth": 6}, num_classes=10, input_size=32)
    with pytest.raises(ConfigError, match="norm"):
        ConvNet(num_classes=10, input_size=32, norm="layer")  # type: ignore[arg-type]


def test_arch_without_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="_target_"):
        build_model({"depth": 3}, num_classes=10, input_size=32)


def test_pretrained_weights_offline_raise_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pretrained, "load_state_dict_from_url", offline)
    for arch in (
        {"_target_": "fgdd.models.resnet.resnet", "depth": 18, "weights": "IMAGENET1K_V1"},
        {"_target_": "fgdd.models.torchvision_zoo.mobilenet_v2", "weights": "DEFAULT"},
    ):
        with pytest.raises(ModelUnavailableError, match=r"download\.pytorch\.org.*place it at"):
            build_model(arch, num_classes=1000, input_size=224)


def test_pretrained_weights_are_loaded_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    state = build_model({"_target_": "fgdd.models.resnet.resnet", "depth": 18}, 1000, 224).state_dict()
    state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in state.items()}
    monkeypatch.setattr(pretrained, "load_state_dict_from_url", lambda *a, **k: state)
    model = build_model({"_target_": "fgdd.models.resnet.resnet", "weights": "DEFAULT"}, 1000, 224)
    assert torch.all(model.fc.weight == 0.5)


def test_pretrained_weight_settings_that_cannot_work_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "load_state_dict_from_url", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(ConfigError, match="1000-class head"):
        build_model({"_target_": "fgdd.models.resnet.resnet", "weights": "DEFAULT"}, 10, 224)
    with pytest.raises(ConfigError, match="low_res_stem"):
        build_model({"_target_": "fgdd.models.resnet.resnet", "weights": "DEFAULT", "low_res_stem": True}, 1000, 32)
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        build_model({"_target_": "fgdd.models.resnet.resnet", "weights": "NOPE"}, 1000, 224)


def test_timm_missing_raises_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail like an absent package
    with pytest.raises(ModelUnavailableError, match="pip install timm"):
        build_model({"_target_": "fgdd.models.timm_model.timm_model", "name": "resnet18"}, 10, 32)
