"""Residual networks: CIFAR-style ResNet-20 for 28x28 digits, ImageNet-layout ResNet-18.

Both follow He et al. 2016, "Deep Residual Learning for Image Recognition": ResNet-20 is
the paper's CIFAR net (Sec. 4.2: 3 stages x 3 basic blocks, 16/32/64 channels) with a
1-channel stem for MNIST; ResNet-18 uses torchvision's module names (``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``) so that its state dict matches torchvision's.

Shortcuts: identity where shapes agree, projection (1x1 conv + BN, the paper's option B)
where the stride or the width changes. Structured pruning must keep both consistent.

ResNet-20's stem is strided for 28x28 digits (see :class:`ResNet20`).

Example:
    >>> ResNet20()(torch.zeros(1, 1, 28, 28)).shape
    torch.Size([1, 10])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet20", "ResNet18"]


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN, added to the (identity or projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(cin, cout, stride)]
    layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _init(model: nn.Module) -> None:
    # torchvision's ResNet init: Kaiming normal (fan_out) convs, BN scale 1, shift 0.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet20(nn.Module):
    """ResNet-20 (0.27 M params) for ``in_channels`` x 28 x 28 input, 10 classes.

    The 3x3 stem has stride ``stem_stride`` (2 by default: stages run at 14/7/4 pixels,
    8.5 M MACs instead of 31 M at stride 1, so training fits two CPU cores).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, stem_stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(16, 16, 3, 1)
        self.layer2 = _stage(16, 32, 3, 2)
        self.layer3 = _stage(32, 64, 3, 2)
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ResNet18(nn.Module):
    """ResNet-18 (11.7 M params) with torchvision's layout, for 3 x 224 x 224 input."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 2, 1)
        self.layer2 = _stage(64, 128, 2, 2)
        self.layer3 = _stage(128, 256, 2, 2)
        self.layer4 = _stage(256, 512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
