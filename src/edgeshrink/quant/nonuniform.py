"""Non-uniform codebooks: k-means weight sharing (Deep Compression) and power-of-two levels.

* k-means (Han et al. 2016): per layer, the non-zero weights are clustered into ``2^bits``
  centroids (linear initialisation over [min, max], which the paper found best); each weight
  becomes an index into the layer's codebook. The centroids are then retrained: the
  gradient of a centroid is the sum of its weights' gradients. Zeros left by pruning stay
  zeros (they are not stored: see :mod:`edgeshrink.encode`).
* power-of-two (Miyashita et al. 2016, Zhou et al. 2017 INQ): levels ``{0, ±s·2^-j}`` so a
  multiply becomes a shift; 1 sign bit + (bits-1) bits of exponent, one FP32 scale a channel.

Both are ``simulated``; the k-means artifact's size is its entropy-coded storage
(:func:`edgeshrink.encode.encode_model_weights`), decoded to dense FP32 at load.

Example:
    >>> recipe = deep_compression_recipe(sparsity=0.92)   # prune, retrain, share, encode
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_range, register_config
from edgeshrink.quant.fake import QuantWrap, fold_batchnorm, layer_filter, wrap_layers
from edgeshrink.quant.lowbit import (
    WeightFn,
    packed_bytes,
    retrain,
    simulated_artifact,
)
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = [
    "KMeansConfig",
    "Po2Config",
    "kmeans_1d",
    "Codebook",
    "po2_quantize",
    "deep_compression_recipe",
]


@register_config
@dataclass(frozen=True)
class KMeansConfig(Config):
    """k-means weight sharing with retrained centroids, stored entropy-coded.

    Attributes:
        bits: codebook bits of Linear layers (``2^bits`` shared values; Han et al.: 5).
        conv_bits: codebook bits of conv layers (0: same as ``bits``; Han et al.: 8).
        epochs: centroid retraining epochs on the task's training data.
        lr: Adam learning rate of the centroids.
        iters: Lloyd iterations of the clustering.
    """

    kind = "kmeans"
    stage = "artifact"
    family = "quantization"
    bits: int = 4
    conv_bits: int = 0
    epochs: int = 1
    lr: float = 1e-4
    iters: int = 30

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 1, 8)
        check_range("conv_bits", self.conv_bits, 0, 8)
        check_range("epochs", self.epochs, 0, 1000)
        check_range("lr", self.lr, 0.0, 10.0)
        check_range("iters", self.iters, 1, 10_000)


@register_config
@dataclass(frozen=True)
class Po2Config(Config):
    """Power-of-two weight levels, one FP32 scale per output channel, simulated.

    Attributes:
        bits: 2-8 (1 sign bit, the rest code the exponent or zero).
        epochs: straight-through retraining epochs.
        lr: Adam learning rate of that retraining.
    """

    kind = "po2"
    stage = "artifact"
    family = "quantization"
    bits: int = 4
    epochs: int = 0
    lr: float = 1e-4

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 2, 8)
        check_range("epochs", self.epochs, 0, 1000)
        check_range("lr", self.lr, 0.0, 10.0)


# ---- pure maths ----------------------------------------------------------------------------
def kmeans_1d(values: torch.Tensor, k: int, iters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on scalars, linear initialisation; returns (centroids, assignment)."""
    v = values.detach().flatten()
    k = max(1, min(k, v.numel()))
    centroids = torch.linspace(float(v.min()), float(v.max()), k, dtype=v.dtype)
    for _ in range(iters):
        # Nearest centroid of sorted centroids = searchsorted on the midpoints.
        centroids, _ = torch.sort(centroids)
        assign = torch.bucketize(v, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros(k, dtype=v.dtype).index_add_(0, assign, v)
        counts = torch.bincount(assign, minlength=k).to(v.dtype)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(new, centroids):
            break
        centroids = new
    centroids, _ = torch.sort(centroids)
    return centroids, torch.bucketize(v, (centroids[1:] + centroids[:-1]) / 2)


class Codebook(nn.Module):
    """A layer's weights as ``centroids[index]`` (zeros kept); the centroids are trainable."""

    def __init__(self, weight: torch.Tensor, bits: int, iters: int = 30):
        super().__init__()
        w = weight.detach()
        mask = w != 0
        centroids, assign = kmeans_1d(w[mask], 1 << bits, iters)
        index = torch.zeros(w.shape, dtype=torch.long)
        index[mask] = assign
        self.centroids = nn.Parameter(centroids)
        self.register_buffer("index", index)
        self.register_buffer("mask", mask)

    def forward(self, _w: torch.Tensor | None = None) -> torch.Tensor:
        return self.centroids[self.index] * self.mask


def po2_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Nearest level of ``{0, ±s·2^-j, j = 0..2^(bits-1)-2}``, ``s = max|w|`` per channel."""
    n_exp = (1 << (bits - 1)) - 1
    scale = w.abs().reshape(w.shape[0], -1).amax(1).clamp(min=1e-12)
    scale = scale.reshape((-1,) + (1,) * (w.dim() - 1))
    levels = torch.cat([torch.zeros(1), 2.0 ** -torch.arange(n_exp, dtype=w.dtype)])
    r = (w.abs() / scale).unsqueeze(-1)
    nearest = levels[(r - levels).abs().argmin(-1)]
    return torch.sign(w) * nearest * scale


# ---- models --------------------------------------------------------------------------------
def kmeans_model(model: nn.Module, cfg: KMeansConfig) -> nn.Module:
    """A copy of ``model`` whose Conv/Linear weights are shared codebooks (trainable)."""
    model = copy.deepcopy(model)

    def make(_name: str, layer: nn.Module) -> QuantWrap:
        bits = cfg.bits if isinstance(layer, nn.Linear) else (cfg.conv_bits or cfg.bits)
        layer.weight.requires_grad_(False)  # only the centroids (and biases) retrain
        return QuantWrap(layer, Codebook(layer.weight, bits, cfg.iters), None)

    wrap_layers(model, make, layer_filter())
    return model


def _round_to_fp16(model: nn.Module) -> None:
    """Centroids and biases rounded to FP16 values (stored in 2 bytes by the encoder;
    Han et al. store the codebook at 16 bits too)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, QuantWrap):
                for p in (m.weight_q.centroids, m.layer.bias):
                    if p is not None:
                        p.copy_(p.half().float())


@transform(KMeansConfig)
def _handle_kmeans(cfg: KMeansConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    from edgeshrink.encode import encode_model_weights

    wrapped = retrain(kmeans_model(model, cfg), ctx, epochs=cfg.epochs, lr=cfg.lr)
    _round_to_fp16(wrapped)
    art = simulated_artifact(wrapped, ctx, precision=f"kmeans{cfg.bits}", size_encoded_bytes=0,
                             notes={"runs_as": "decoded to dense FP32 ONNX at load",
                                    "codebook_bits": {"linear": cfg.bits,
                                                      "conv": cfg.conv_bits or cfg.bits}})
    art.size_encoded_bytes = len(encode_model_weights(art.model))
    art.simulate = None  # the decoded dense file computes exactly the shared weights
    return art


@transform(Po2Config)
def _handle_po2(cfg: Po2Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    model = fold_batchnorm(copy.deepcopy(model).eval())
    wrapped, bits = copy.deepcopy(model), {}

    def make(name: str, layer: nn.Module) -> QuantWrap:
        bits[name] = (cfg.bits, layer.weight.shape[0])
        return QuantWrap(layer, WeightFn(lambda w: po2_quantize(w, cfg.bits)), None)

    wrap_layers(wrapped, make, layer_filter())
    wrapped = retrain(wrapped, ctx, epochs=cfg.epochs, lr=cfg.lr)
    return simulated_artifact(wrapped, ctx, precision=f"po2-{cfg.bits}",
                              size_encoded_bytes=packed_bytes(model, bits),
                              notes={"scheme": "power-of-two"})


def deep_compression_recipe(
    sparsity: float = 0.94,
    *,
    schedule: tuple[float, ...] = (0.6, 0.8, 0.9),
    prune_epochs: int = 5,
    bits: int = 5,
    conv_bits: int = 5,
    kmeans_epochs: int = 2,
    lr: float = 1e-3,
    distill: float = 0.0,
) -> tuple[Config, ...]:
    """Han et al. 2016 as one recipe: iterative magnitude pruning with retraining (through
    ``schedule`` to ``sparsity``), k-means sharing with retrained centroids, entropy-coded
    storage (the ``kmeans`` artifact's encoded size).

    Each pruning step keeps the global cut's per-layer rates: its per-layer floor
    (``min_keep``) is a quarter of the mean keep fraction, at most the default 5 %. With the
    default floor a 95 % cut would leave every layer exactly 5 % (1 - 0.95 = min_keep), a
    uniform cut, and LeNet-300-100's Deep Compression lost 2.3 points instead of gaining 0.5
    (benchmarks/RESULTS.md, ``lowbit``)."""
    from edgeshrink.prune import UnstructuredConfig
    from edgeshrink.train import FinetuneConfig

    steps: list[Config] = []
    for s in (*[s for s in schedule if s < sparsity], sparsity):
        steps += [UnstructuredConfig(sparsity=s, min_keep=min(0.05, round((1 - s) / 4, 6))),
                  FinetuneConfig(epochs=prune_epochs, lr=lr, distill=distill)]
    return (*steps, KMeansConfig(bits=bits, conv_bits=conv_bits, epochs=kmeans_epochs, lr=lr / 10))
