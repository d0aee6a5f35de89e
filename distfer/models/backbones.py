"""Backbone registry: torchvision ResNets (ImageNet and small-input stems) and a small CPU net.

Every factory returns an encoder ``nn.Module`` mapping images ``[N, 3, H, W]`` (normalised
float) to features ``[N, D]``, with its feature dimension in ``encoder.feature_dim``. New
backbones register with :func:`register`; :func:`build_backbone` raises a
:class:`~distfer.errors.ConfigError` listing the choices for an unknown name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50

from distfer.errors import ConfigError

_REGISTRY: dict[str, Callable[[], nn.Module]] = {}


def register(name: str) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator: register a backbone factory under ``name`` (names are unique)."""

    def deco(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def available() -> tuple[str, ...]:
    """Names of all registered backbones, sorted."""
    return tuple(sorted(_REGISTRY))


def build_backbone(name: str) -> nn.Module:
    """A freshly initialised encoder for architecture ``name``.

    Raises:
        ConfigError: ``name`` is not registered; the message lists the choices.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {name!r}; choose one of {', '.join(available())}"
        ) from None
    return factory()


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its ``fc`` layer: ``[N, 3, H, W] -> [N, D]``.

    Parameter names are the torchvision ones (``conv1.weight``, ``layer1.0...``), so plain
    torchvision state dicts load into it once ``fc.*`` is removed.
    """

    def __init__(self, net: nn.Module, *, small_stem: bool) -> None:
        super().__init__()
        if small_stem:  # 48-112 px faces: 3x3 stride-1 first conv, no max-pool
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        self.feature_dim: int = net.fc.in_features
        del net.fc
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallNet(nn.Module):
    """A fast CPU CNN for 32 px faces (~280k parameters, 128-d features).

    Shapes for a 32 px input: ``[N,3,32,32] -> [N,32,16,16] -> [N,64,8,8] -> [N,128,8,8]
    -> [N,128]`` (global average pool).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stage1 = nn.Sequential(_conv_bn(3, w), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(_conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(_conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w))
        self.feature_dim: int = 4 * w
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


@register("small")
def _small() -> nn.Module:
    return SmallNet()


for _depth, _fn in ((18, resnet18), (34, resnet34), (50, resnet50)):
    register(f"resnet{_depth}")(lambda fn=_fn: ResNetEncoder(fn(weights=None), small_stem=False))
    register(f"resnet{_depth}_small")(
        lambda fn=_fn: ResNetEncoder(fn(weights=None), small_stem=True)
    )


def infer_resnet_arch(state_dict: dict[str, torch.Tensor]) -> str:
    """Guess the registry name of a torchvision-style ResNet state dict (keys ``conv1.weight``...).

    Raises:
        ConfigError: the keys are not those of a torchvision ResNet.
    """
    if "conv1.weight" not in state_dict or "layer4.0.conv1.weight" not in state_dict:
        raise ConfigError(
            "the state dict is not a torchvision ResNet (no conv1.weight / layer4.* keys)"
        )
    if "layer1.0.conv3.weight" in state_dict:
        depth = 50
    elif "layer3.5.conv1.weight" in state_dict:
        depth = 34
    else:
        depth = 18
    small = tuple(state_dict["conv1.weight"].shape[-2:]) == (3, 3)
    return f"resnet{depth}{'_small' if small else ''}"
