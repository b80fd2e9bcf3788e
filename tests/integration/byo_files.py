"""A user's files, built in seconds: a small CNN trained on sklearn's digits, saved as
ONNX, torch.export .pt2, TorchScript, a state dict with its architecture file, and a
whole pickled module (which must be refused); the data as digits.npz."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from torch import nn

ARCH = textwrap.dedent('''
    import torch
    from torch import nn


    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.fc1 = nn.Linear(8 * 4 * 4, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))
''')


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)


def arch_class(folder: Path):
    import importlib.util
    import sys

    path = folder / "net.py"
    path.write_text(ARCH)
    spec = importlib.util.spec_from_file_location("byo_digits_net", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["byo_digits_net"] = module  # so that torch.save can pickle the whole module
    spec.loader.exec_module(module)
    return module.DigitsNet


def train_digits(folder: Path) -> nn.Module:
    """A DigitsNet trained for 2 epochs (a few seconds)."""
    torch.manual_seed(0)
    x, y = digits()
    model = arch_class(folder)()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(2):
        for i in range(0, len(x), 64):
            loss = nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def write_files(folder: Path) -> dict[str, Path]:
    """Every format of the trained model, plus digits.npz (x, y) and an unlabelled copy."""
    folder.mkdir(parents=True, exist_ok=True)
    model = train_digits(folder)
    x, y = digits()
    example = torch.from_numpy(x[:2])
    files = {"npz": folder / "digits.npz", "npz_unlabelled": folder / "digits-x.npz"}
    np.savez(files["npz"], x=x, y=y)
    np.savez(files["npz_unlabelled"], x=x)
    files["onnx"] = folder / "my.onnx"
    torch.onnx.export(model, (example,), str(files["onnx"]), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "b"}}, dynamo=False)
    files["pt2"] = folder / "my.pt2"
    prog = torch.export.export(model, (example,),
                               dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(prog, str(files["pt2"]))
    files["torchscript"] = folder / "my-ts.pt"
    torch.jit.trace(model, (example,)).save(str(files["torchscript"]))
    files["state_dict"] = folder / "weights.pt"
    torch.save(model.state_dict(), files["state_dict"])
    files["arch"] = folder / "net.py"
    files["pickled"] = folder / "whole.pt"
    torch.save(model, files["pickled"])
    return files
