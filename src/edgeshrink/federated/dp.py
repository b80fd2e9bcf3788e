"""Client-level differential privacy: clip the update, then add Gaussian noise (numpy only).

Order on the client: local training -> update ``g`` -> **clip** ``g`` to L2 norm ``C`` ->
**add noise** ``N(0, (sigma * C)**2)`` per coordinate -> compression (error feedback, top-k,
quantization...). Compression only post-processes the noised update, so it spends no extra
privacy budget (the Gaussian mechanism of Abadi et al. 2016 / McMahan et al. 2018); the
error-feedback residual is also a function of noised updates only.

Example:
    >>> g = privatize(np.ones(4, np.float32), clip=1.0, noise=0.0, rng=np.random.default_rng(0))
    >>> round(float(np.linalg.norm(g)), 6)
    1.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["privatize"]


def privatize(update: np.ndarray, *, clip: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``update`` clipped to L2 norm ``clip``, plus Gaussian noise of std ``noise * clip``."""
    g = np.asarray(update, np.float32)
    norm = float(np.linalg.norm(g))
    if norm > clip:
        g = g * np.float32(clip / norm)
    if noise > 0:
        g = g + rng.normal(0.0, noise * clip, size=g.shape).astype(np.float32)
    return g.astype(np.float32)
