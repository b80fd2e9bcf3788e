"""MTCNN's P-Net, R-Net and O-Net, loading facenet-pytorch's bundled pretrained weights.

Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks". The layers and names follow ``facenet_pytorch/models/mtcnn.py``
(v2.6.0) so its ``data/{pnet,rnet,onet}.pt`` state dicts load strictly; the package itself
is never imported (its ``__init__`` needs torchvision). Two deliberate differences:

* ``forward`` returns the face probabilities *first* (facenet-pytorch returns them last),
  because edgeshrink scores a task on a model's first output. The regression heads stay,
  so a compressed net still does the whole job and its latency is honest.
* Inputs are ``(N, 3, H, W)`` RGB, normalised as MTCNN does: ``(x - 127.5) * 0.0078125``
  on 0-255 pixels (facenet-pytorch ``detect_face``).

The weights were converted from a TensorFlow model, so R-Net and O-Net flatten in TF's
(W, H, C) order: the ``permute(0, 3, 2, 1)`` before the first Linear must stay.

Example:
    >>> onet = pretrained_mtcnn("onet")
    >>> [t.shape for t in onet(torch.zeros(2, 3, 48, 48))]
    [torch.Size([2, 2]), torch.Size([2, 4]), torch.Size([2, 10])]
"""

from __future__ import annotations

import torch
from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.zoo.models_mobilenet import package_dir

__all__ = ["PNet", "RNet", "ONet", "pretrained_mtcnn", "MTCNN_INPUT_SIZE", "mtcnn_normalize"]

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
MTCNN_INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}


def mtcnn_normalize(pixels: torch.Tensor) -> torch.Tensor:
    """0-255 RGB pixels -> MTCNN's input range (facenet-pytorch ``detect_face``)."""
    return (pixels - 127.5) * 0.0078125


def _tf_flatten(x: torch.Tensor) -> torch.Tensor:
    # The TF-converted Linear weights expect (W, H, C) flattening order.
    return x.permute(0, 3, 2, 1).contiguous().flatten(1)


class PNet(nn.Module):
    """Fully convolutional proposal net (12x12 receptive field): ``(prob, bbox)`` maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.softmax4_1(self.conv4_1(x)), self.conv4_2(x)


class RNet(nn.Module):
    """Refinement net on 24x24 crops: ``(prob (N, 2), bbox (N, 4))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_tf_flatten(x)))
        return self.softmax5_1(self.dense5_1(x)), self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: ``(prob (N, 2), bbox (N, 4), landmarks (N, 10))``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_tf_flatten(x)))
        return self.softmax6_1(self.dense6_1(x)), self.dense6_2(x), self.dense6_3(x)


_NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def pretrained_mtcnn(which: str) -> nn.Module:
    """``"pnet"``, ``"rnet"`` or ``"onet"`` with facenet-pytorch's weights, in eval mode."""
    if which not in _NETS:
        raise UserError(f"MTCNN net {which!r} is unknown; use one of {', '.join(_NETS)}.")
    path = package_dir("facenet_pytorch", INSTALL_HINT) / "data" / f"{which}.pt"
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall it with `{INSTALL_HINT}`.")
    model = _NETS[which]()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()
