"""An edgeshrink task for your own model: edit the three marked places, then run

    edgeshrink study --task THIS_FILE.py:make_task --device raspberry-pi-4

A task is your trained model, data to fine-tune, calibrate and evaluate on, and a metric.
(For a model file and an .npz/.csv/image folder, `--model FILE --data PATH` needs no task
file at all; write one when you need your own loading, metric or fine-tuning loss.)
"""

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.task import Task, accuracy_metric


class MyNet(nn.Module):  # 1. your architecture (or import it from your code)
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(x)


def load_arrays():  # 2. your data: inputs (N, ...) float32 and integer labels (N,)
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target.astype(np.int64)


def make_task() -> Task:
    model = MyNet()
    # 3. your weights: model.load_state_dict(torch.load("weights.pt", weights_only=True))
    x, y = load_arrays()
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:400], order[400:]
    calib = train[:256]  # calibration may come from the training split, never from eval
    _quick_train(model, x[train], y[train])  # delete this line once you load weights
    return Task(
        name="my-task", model=model,
        train=Dataset((x[train],), y[train]),       # None: the model cannot be fine-tuned
        calibration=Dataset((x[calib],), y[calib]),  # a few hundred representative samples
        eval=Dataset((x[test],), y[test]),           # held out: every candidate is scored here
        metric=accuracy_metric,
        # loss_fn=torch.nn.functional.mse_loss,      # your own fine-tuning loss (regression...)
        description="MyNet on sklearn digits",
    )


def _quick_train(model, x, y) -> None:
    """Stands in for your trained weights so that the template runs as it is."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(3):
        for i in range(0, len(x), 64):
            loss = nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
