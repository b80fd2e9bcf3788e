"""Encoded storage: exact round-trips, Huffman optimality facts, sparse sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.encode import (
    decode,
    encode,
    encode_model_weights,
    huffman_decode,
    huffman_encode,
    huffman_lengths,
)


def test_huffman_lengths_known_example():
    # freqs 45,13,12,16,9,5 (CLRS): optimal lengths 1,3,3,3,4,4 -> 224 bits
    lengths = huffman_lengths(np.array([45, 13, 12, 16, 9, 5]))
    assert sorted(lengths.tolist()) == [1, 3, 3, 3, 4, 4]
    assert int((lengths * [45, 13, 12, 16, 9, 5]).sum()) == 224
    assert (2.0 ** -lengths.astype(float)).sum() == 1.0  # Kraft equality: complete code


@pytest.mark.parametrize("alphabet", [1, 2, 17, 256])
def test_huffman_round_trip(alphabet):
    rng = np.random.default_rng(alphabet)
    symbols = np.minimum(rng.geometric(0.3, size=3000) - 1, alphabet - 1)
    blob = huffman_encode(symbols, alphabet)
    got, end = huffman_decode(blob)
    assert end == len(blob)
    assert np.array_equal(got, symbols)


def test_huffman_caps_code_length():
    freqs = np.array([2 ** i for i in range(30)])
    assert huffman_lengths(freqs).max() <= 15
    symbols = np.repeat(np.arange(20), 2 ** np.arange(20) // 1000 + 1)
    assert np.array_equal(huffman_decode(huffman_encode(symbols, 20))[0], symbols)


def _sparse_shared(rng, shape, density, k):
    book = rng.normal(size=k).astype(np.float32)
    w = book[rng.integers(0, k, size=shape)]
    return np.where(rng.random(shape) < density, w, 0).astype(np.float32)


def test_round_trip_exact_all_forms():
    rng = np.random.default_rng(0)
    arrays = {
        "dense_fp32": rng.normal(size=(7, 5)).astype(np.float32),
        "sparse_fp32": np.where(rng.random((40, 30)) < 0.1, rng.normal(size=(40, 30)), 0)
        .astype(np.float32),
        "shared_dense": _sparse_shared(rng, (30, 20), 1.0, 16),
        "shared_sparse": _sparse_shared(rng, (64, 3, 5, 5), 0.08, 32),
        "empty_gap": np.zeros((1000,), np.float32),
        "ints": np.arange(6, dtype=np.int64),
        "scalar": np.array(3.5, np.float32),
        "fp16_exact": np.array([0.5, -1.25, 0, 0, 0, 0, 3.0], np.float32),
    }
    arrays["empty_gap"][999] = 1.0  # one long gap needs many filler entries
    got = decode(encode(arrays))
    assert list(got) == list(arrays)
    for name, arr in arrays.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape, name
        assert np.array_equal(got[name], arr), name


def test_fp16_exact_values_take_two_bytes():
    v = np.linspace(-1, 1, 1000).astype(np.float16).astype(np.float32)
    assert len(encode({"b": v})) < 1000 * 2 + 40
    assert np.array_equal(decode(encode({"b": v}))["b"], v)


def test_sizes_follow_sparsity_and_sharing():
    rng = np.random.default_rng(1)
    n = 300 * 100
    sparse = _sparse_shared(rng, (300, 100), 0.08, 32)
    size = len(encode({"w": sparse}))
    # 8 % non-zeros, 5-bit codebook: well under (5 bits + 5-bit index) per non-zero
    assert size < 0.08 * n * 10 / 8 + 300
    assert size * 30 < n * 4
    dense = rng.normal(size=(300, 100)).astype(np.float32)
    assert len(encode({"w": dense})) <= n * 4 + 40  # never worse than raw + header


def test_encode_model_weights_round_trip():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        model[0].weight.mul_((model[0].weight.abs() > 0.15).float())
    got = decode(encode_model_weights(model))
    for k, v in model.state_dict().items():
        assert np.array_equal(got[k], v.numpy())


def test_per_channel_quantized_rows_pack_to_their_bits():
    """A uniform per-channel grid costs its bits a weight plus 8 bytes a row, exactly."""
    import torch

    from edgeshrink.quant.fake import QuantSpec, quantize_weight

    torch.manual_seed(0)
    w = torch.randn(120, 400)
    for bits in (2, 3, 4, 8):
        q = quantize_weight(w, QuantSpec(bits, True, "channel", 0)).numpy()
        blob = encode({"w": q})
        back = decode(blob)["w"]
        assert back.dtype == q.dtype and np.array_equal(back, q)
        ideal = bits * q.size / 8 + 4 * 120  # bits a weight + one FP32 scale a row
        assert len(blob) <= 1.03 * ideal, (bits, len(blob), ideal)
