"""A small vision transformer for 28x28 digits (Dosovitskiy et al. 2021, "An Image is Worth
16x16 Words"), sized for two CPU cores.

7x7 patches give 16 tokens plus a class token; width 64, 4 heads, 4 pre-norm blocks, MLP
128 (0.14 M params). Attention is written with explicit ``q``/``k``/``v``/``proj`` Linear
layers and a ``num_heads`` attribute, so structured pruning can remove whole heads
(it updates ``num_heads``) and FFN neurons, and the graph exports to plain ONNX MatMuls.

Example:
    >>> TinyViT()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Attention", "Block", "TinyViT"]


class Attention(nn.Module):
    """Multi-head self-attention; the head width follows from ``q.out_features // num_heads``.

    ``scale`` is fixed at construction so that pruning head dimensions would not change
    the trained softmax temperature.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = float((dim // num_heads) ** -0.5)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """ViT for ``in_channels`` x 28 x 28 input: patch conv, class token, blocks, linear head."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        mlp: int = 128,
        patch: int = 7,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        tokens = (28 // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])
