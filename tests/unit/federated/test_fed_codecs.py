"""Update codecs: exact round trips, byte counts, reference reconstructions, refusals."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgeshrink.errors import UserError
from edgeshrink.federated import Compressor, Layout, WireError, decode_update, parse_spec
from edgeshrink.federated.bits import rice_decode, rice_encode, total_unary_bits
from edgeshrink.federated.compress import DOWNLOAD
from edgeshrink.federated.wire import HEADER, read_frame

LAYOUT = Layout(((40, 30), (40,), (10, 40), (10,)))
SPECS = ["none", "fp16", "q8", "q4", "q2", "efsign", "stc:0.05", "topk:0.05+ef", "topk:0.05+q8+ef",
         "topk:0.05+fp16", "powersgd:2+ef", "powersgd:2+fp16+ef", "powersgd:2+q8",
         "topk:0.02+dgc:0.9+warmup:3+clip:5", "q4+bucket:64+ef"]


def _update(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).laplace(size=LAYOUT.size) * 0.01).astype(np.float32)


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_is_exact_and_bytes_are_the_message(spec):
    comp = Compressor(spec, LAYOUT, seed=1)
    for rnd in range(3):  # state (EF, momentum, PowerSGD's Q) carries over rounds
        msg, sent = comp.compress(_update(rnd), rnd)
        decoded = decode_update(msg, spec, LAYOUT)
        assert decoded.dtype == np.float32 and np.array_equal(decoded, sent)
        frame = read_frame(msg)
        assert len(msg) == HEADER.size + len(frame.spec) + len(frame.body) + 4
        assert frame.spec == parse_spec(spec).wire() and frame.round == rnd


def test_fp32_and_fp16_reconstruct_the_values_themselves():
    g = _update()
    msg, _ = Compressor("none", LAYOUT).compress(g)
    assert np.array_equal(decode_update(msg, "none", LAYOUT), g)
    assert len(msg) == HEADER.size + len("fp32") + 4 + 4 * LAYOUT.size + 4
    msg, _ = Compressor("fp16", LAYOUT).compress(g)
    assert np.array_equal(decode_update(msg, "fp16", LAYOUT), g.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_qsgd_levels_are_stochastic_roundings_of_the_bucket_max_grid(bits):
    g, s, bucket = _update(), 2 ** (bits - 1) - 1, 512
    msg, _ = Compressor(f"q{bits}", LAYOUT, seed=3).compress(g)
    out = decode_update(msg, f"q{bits}", LAYOUT)
    for a in range(0, LAYOUT.size, bucket):
        v, d = g[a:a + bucket], out[a:a + bucket]
        step = np.float32(np.abs(v).max()) / np.float32(s)
        levels = d / step
        assert np.allclose(levels, np.round(levels), atol=1e-4)  # on the grid
        assert np.all(np.abs(levels - v / step) < 1 + 1e-4)  # floor or ceil of the exact level
        assert np.all((np.sign(d) == np.sign(v)) | (d == 0))


def test_qsgd_is_unbiased():
    g = _update()
    mean = np.mean([decode_update(Compressor("q2", LAYOUT, seed=s).compress(g)[0], "q2", LAYOUT)
                    for s in range(300)], axis=0)
    assert np.abs(mean - g).max() < 0.25 * np.abs(g).max()
    assert abs(float(np.mean(mean - g))) < 1e-3


def test_topk_sends_exactly_the_largest_values_and_stc_their_mean_magnitude():
    g = _update()
    k = round(0.05 * LAYOUT.size)
    top = np.sort(np.argsort(-np.abs(g))[:k])
    out = decode_update(Compressor("topk:0.05", LAYOUT).compress(g)[0], "topk:0.05", LAYOUT)
    assert np.array_equal(np.flatnonzero(out), top) and np.array_equal(out[top], g[top])
    out = decode_update(Compressor("stc:0.05", LAYOUT).compress(g)[0], "stc:0.05", LAYOUT)
    mu = np.float32(np.abs(g[top]).mean())
    assert np.array_equal(np.flatnonzero(out), top)
    assert np.array_equal(out[top], np.where(g[top] < 0, -mu, mu))


def test_scaled_sign_is_one_bit_per_value_with_a_mean_magnitude_per_tensor():
    g = _update()
    msg, _ = Compressor("efsign", LAYOUT).compress(g)
    out = decode_update(msg, "efsign", LAYOUT)
    for got, want in zip(LAYOUT.unflatten(out), LAYOUT.unflatten(g), strict=True):
        mu = np.float32(np.abs(want).mean())
        assert np.array_equal(got, np.where(want < 0, -mu, mu))
    assert len(read_frame(msg).body) == 4 + 4 * 4 + 4 + (LAYOUT.size + 7) // 8


def test_powersgd_is_rank_r_and_exact_on_a_rank_one_update():
    u = np.outer(np.arange(1, 41), np.linspace(-1, 1, 30)).astype(np.float32)
    g = LAYOUT.flatten([u, np.ones(40), np.zeros((10, 40)), np.ones(10)])
    out = LAYOUT.unflatten(decode_update(Compressor("powersgd:2", LAYOUT).compress(g)[0],
                                         "powersgd:2", LAYOUT))
    np.testing.assert_allclose(out[0], u, rtol=0, atol=1e-4)
    assert np.array_equal(out[1], np.ones(40, np.float32))  # vectors travel whole
    msg, _ = Compressor("powersgd:2", LAYOUT).compress(_update())
    assert np.linalg.matrix_rank(LAYOUT.unflatten(decode_update(msg, "powersgd:2", LAYOUT))[0]) == 2
    assert len(read_frame(msg).body) == 4 + 4 * ((40 + 30) * 2 + 40 + (10 + 40) * 2 + 10)


def test_error_feedback_accumulates_what_was_not_sent():
    g = _update()
    comp = Compressor("topk:0.05+ef", LAYOUT)
    total = np.zeros_like(g)
    for rnd in range(6):
        _, sent = comp.compress(g, rnd)
        total += sent
        np.testing.assert_allclose(total + comp.residual, (rnd + 1) * g, rtol=0, atol=1e-5)
    assert Compressor("topk:0.05", LAYOUT).residual is None


def test_dgc_masks_momentum_where_sent_and_warms_up_density():
    comp = Compressor("topk:0.01+dgc:0.9+warmup:3", LAYOUT)
    counts = []
    for rnd in range(5):
        msg, sent = comp.compress(_update(rnd), rnd)
        assert np.all(comp.velocity[sent != 0] == 0) and np.count_nonzero(comp.velocity) > 0
        counts.append(struct.unpack_from("<I", read_frame(msg).body)[0])
    assert counts[0] > counts[1] > counts[2] > counts[3] == counts[4] == round(0.01 * LAYOUT.size)


def test_local_clipping_bounds_the_update_norm():
    out = Compressor("clip:0.5", LAYOUT).compress(_update() * 100)[1]
    assert abs(float(np.linalg.norm(out)) - 0.5) < 1e-5


def test_rice_code_round_trips_and_refuses_inconsistent_streams():
    u = np.concatenate([np.zeros(5), np.random.default_rng(0).geometric(0.01, 500), [2**20]]).astype(np.uint64)
    for k in (0, 3, 7, 12):
        blob = rice_encode(u, k)
        assert np.array_equal(rice_decode(blob, len(u), k, total_unary_bits(u, k)), u)
    with pytest.raises(WireError):
        rice_decode(blob, len(u) + 1, 12, total_unary_bits(u, 12))


def _message(spec="topk:0.05+q8+ef"):
    return Compressor(spec, LAYOUT).compress(_update())[0]


def _recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


@pytest.mark.parametrize("cut", [0, 3, 19, 25, 100, -1, -5])
def test_truncated_messages_are_refused(cut):
    msg = _message()
    with pytest.raises(WireError, match="truncated"):
        decode_update(msg[:cut], "topk:0.05+q8+ef", LAYOUT)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda m: m + b"\0", "longer than its header"),
    (lambda m: m[:40] + bytes([m[40] ^ 1]) + m[41:], "CRC"),
    (lambda m: b"XXXX" + m[4:], "not an edgeshrink"),
    (lambda m: m[:4] + b"\x02" + m[5:], "version 2"),
    (lambda m: b"\x17" * len(m), "not an edgeshrink"),
])
def test_corrupted_and_garbage_messages_are_refused(mutate, match):
    with pytest.raises(WireError, match=match):
        decode_update(mutate(_message()), "topk:0.05+q8+ef", LAYOUT)


def test_messages_for_another_model_spec_or_direction_are_refused():
    msg = _message()
    with pytest.raises(WireError, match="different tensor shapes"):
        decode_update(msg, "topk:0.05+q8+ef", Layout(((40, 30),)))
    with pytest.raises(WireError, match="compressed with 'topk:0.05\\+q8'"):
        decode_update(msg, "topk:0.05+q4", LAYOUT)
    with pytest.raises(WireError, match="wrong way"):
        decode_update(msg, "topk:0.05+q8", LAYOUT, direction=DOWNLOAD)


def _body_offset(msg: bytes) -> int:
    return HEADER.size + len(read_frame(msg).spec)


@pytest.mark.parametrize(("spec", "field", "value", "match"), [
    ("topk:0.05+q8", 0, struct.pack("<I", 10**6), "selects"),       # k larger than the model
    ("topk:0.05+q8", 4, b"\x30", "position code"),                   # Rice parameter out of range
    ("q8", 4, struct.pack("<f", float("nan")), "scale"),             # NaN scale
    ("none", 4, struct.pack("<f", float("inf")), "non-finite"),       # inf value
    ("efsign", 4, struct.pack("<f", -1.0), "sign scale"),
])
def test_malformed_bodies_with_a_valid_crc_are_refused(spec, field, value, match):
    msg = _message(spec)
    at = _body_offset(msg) + field
    bad = _recrc(msg[:at] + value + msg[at + len(value):])
    with pytest.raises(WireError, match=match):
        decode_update(bad, spec, LAYOUT)


def test_random_bit_flips_with_recomputed_crc_never_escape_as_other_errors():
    msg, rng = _message(), np.random.default_rng(0)
    for _ in range(300):
        data = bytearray(msg)
        i = int(rng.integers(_body_offset(msg), len(msg) - 4))
        data[i] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_update(_recrc(bytes(data)), "topk:0.05+q8+ef", LAYOUT)
        except WireError:
            continue
        assert out.shape == (LAYOUT.size,) and np.all(np.isfinite(out))


@pytest.mark.parametrize(("text", "canonical"), [
    ("none", "fp32"), ("efsign", "sign+ef"), ("stc:0.01", "topk:0.01+ternary+ef"),
    ("ef+topk:0.01", "topk:0.01+ef"), ("int8", "q8"), ("dgc+topk:0.001+warmup:4", "topk:0.001+dgc:0.9+warmup:4"),
    ("powersgd:2+ef", "powersgd:2+ef"), ("q4+bucket:64", "q4+bucket:64"),
])
def test_spec_parsing_is_canonical(text, canonical):
    assert str(parse_spec(text)) == canonical == str(parse_spec(canonical))


@pytest.mark.parametrize(("text", "match"), [
    ("zip", "unknown compressor term"), ("topk:abc", "needs a number"), ("topk:0", "density"),
    ("topk:1.5", "density"), ("qsgd:3", "8, 4 or 2"), ("powersgd:0", "rank"),
    ("sign+topk:0.1", "ternary"), ("warmup:3", "needs a top-k"), ("q8++ef", "empty term"),
    ("dgc:1.2", "momentum"), ("clip:-1", "clip"),
])
def test_bad_specs_are_one_user_error(text, match):
    with pytest.raises(UserError, match=match):
        parse_spec(text)


def test_best_rice_parameter_is_the_brute_force_minimum():
    from edgeshrink.federated.bits import best_rice_k, rice_bits

    rng = np.random.default_rng(0)
    for p in (0.9, 0.3, 0.05, 0.002):
        u = rng.geometric(p, 2000).astype(np.uint64)
        k = best_rice_k(u, 24)
        assert rice_bits(u, k) == min(rice_bits(u, j) for j in range(25))
