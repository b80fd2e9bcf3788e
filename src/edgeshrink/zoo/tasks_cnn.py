"""Residual and transformer tasks for structured pruning: ResNet-20 and a tiny ViT on MNIST,
and an ImageNet-layout ResNet-18 for speed measurements at 224x224.

The MNIST tasks use the 3,500 / 500 / 1,000 split of :mod:`edgeshrink.zoo.tasks_mnist` and
train deterministically from the seed (each well under two minutes on two cores); their
checkpoints are cached. ``zoo:resnet18-imagenet-random`` has random (seeded) weights: its
metric is agreement with the unpruned model, which is all a latency study needs.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeshrink.data import Dataset
from edgeshrink.task import Task
from edgeshrink.train import FinetuneConfig, fit
from edgeshrink.zoo import register_task
from edgeshrink.zoo.cache import cached_state
from edgeshrink.zoo.models_resnet import ResNet18, ResNet20
from edgeshrink.zoo.models_vit import TinyViT
from edgeshrink.zoo.tasks_mnist import mnist_arrays, split

__all__ = ["resnet20_mnist", "vit_mnist", "resnet18_imagenet_random"]

SEED = 0
# ResNet-20: AdamW + one-cycle LR (Smith & Topin 2019); with a constant LR its BatchNorm
# net oscillated between 88 % and 97 % test accuracy from one epoch to the next.
RESNET20_EPOCHS, RESNET20_LR, RESNET20_WD = 6, 3e-3, 1e-4
VIT_RECIPE = FinetuneConfig(epochs=20, lr=2e-3, batch_size=64, keep_zeros=False)


def _mnist_splits() -> tuple[Dataset, Dataset, Dataset]:
    x, y = mnist_arrays()
    return split(x, y, n_calib=500, n_test=1000)


def _trainer(recipe: FinetuneConfig, train: Dataset):
    def run(model: torch.nn.Module) -> None:
        torch.manual_seed(SEED)
        model.load_state_dict(type(model)().state_dict())  # seeded init
        fit(model, recipe, train, seed=SEED)

    return run


def _version(recipe: FinetuneConfig) -> str:
    return f"e{recipe.epochs}-lr{recipe.lr:g}-b{recipe.batch_size}-s{SEED}"


def _train_one_cycle(model: torch.nn.Module, train: Dataset) -> None:
    torch.manual_seed(SEED)
    model.load_state_dict(type(model)().state_dict())  # seeded init
    opt = torch.optim.AdamW(model.parameters(), lr=RESNET20_LR, weight_decay=RESNET20_WD)
    steps = RESNET20_EPOCHS * -(-len(train) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RESNET20_LR, total_steps=steps,
                                                pct_start=0.15)  # fmt: skip
    model.train()
    for epoch in range(RESNET20_EPOCHS):
        for xs, y in train.batches(64, shuffle=True, seed=SEED + epoch):
            loss = torch.nn.functional.cross_entropy(model(*xs), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


@register_task(
    "resnet20-mnist", "ResNet-20 (identity + projection shortcuts) on 5,000 real MNIST digits"
)
def resnet20_mnist() -> Task:
    train, calib, test = _mnist_splits()
    torch.manual_seed(SEED)
    key = f"resnet20-mnist-v2-e{RESNET20_EPOCHS}-lr{RESNET20_LR:g}-onecycle-s{SEED}"
    model = cached_state(key, ResNet20(), lambda m: _train_one_cycle(m, train))
    return Task(
        "zoo:resnet20-mnist", model, train, calib, test, seed=SEED,
        description="CIFAR-style ResNet-20 (0.27 M params, 8.5 M MACs, stride-2 stem) on "
        "28x28 MNIST, 3,500/500/1,000",
    )  # fmt: skip


@register_task("vit-mnist", "Tiny ViT (7x7 patches, 4 heads, 4 blocks) on 5,000 real MNIST digits")
def vit_mnist() -> Task:
    train, calib, test = _mnist_splits()
    torch.manual_seed(SEED)
    model = cached_state(
        f"vit-mnist-v1-{_version(VIT_RECIPE)}", TinyViT(), _trainer(VIT_RECIPE, train)
    )
    return Task(
        "zoo:vit-mnist", model, train, calib, test, seed=SEED,
        description="ViT (dim 64, 4 heads, 4 blocks, MLP 128; 0.14 M params) on 28x28 MNIST",
    )  # fmt: skip


def _random_images(n: int, seed: int) -> np.ndarray:
    # Smooth random images (low-res noise upsampled), ImageNet-normalised scale.
    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 14, 14, generator=gen)
    return torch.nn.functional.interpolate(low, size=(224, 224), mode="bilinear").numpy()


@register_task(
    "resnet18-imagenet-random",
    "ImageNet-layout ResNet-18, random weights, 224x224: for speed; metric = agreement",
)
def resnet18_imagenet_random() -> Task:
    from edgeshrink.zoo.tasks_pretrained import agreement_metric, run_batched

    torch.manual_seed(SEED)
    model = ResNet18().eval()
    x_eval, x_calib = _random_images(32, SEED), _random_images(32, SEED + 1)
    evalset = Dataset((x_eval,), run_batched(model, (x_eval,)))
    calib = Dataset((x_calib,), run_batched(model, (x_calib,)))
    return Task(
        "zoo:resnet18-imagenet-random", model, None, calib, evalset, metric=agreement_metric,
        seed=SEED,
        description="ResNet-18 (torchvision layout, seeded random weights) at 224x224 for "
        "latency; metric is top-1 agreement with the unpruned model on 32 random images",
    )  # fmt: skip
