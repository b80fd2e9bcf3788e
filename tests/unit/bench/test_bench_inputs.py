"""Inputs: generated from declared shapes/types, or read from .npz and checked."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.bench import BenchError, InputSpec, generate_feeds, load_npz_feeds, parse_dims

X = InputSpec("X", ("N", 16), "tensor(float)")
IDS = InputSpec("ids", ("batch", "seq"), "tensor(int64)")


def test_generated_shapes_types_and_dynamic_values():
    feeds = generate_feeds([X, IDS], batch=3, dims={"seq": 7}, seed=1)
    assert feeds["X"].shape == (3, 16) and feeds["X"].dtype == np.float32
    assert feeds["ids"].shape == (3, 7) and feeds["ids"].dtype == np.int64
    assert (feeds["ids"] == 1).all()
    assert abs(feeds["X"].std() - 1.0) < 0.3  # N(0, 1)
    again = generate_feeds([X], batch=3, dims={}, seed=1)
    np.testing.assert_array_equal(again["X"], feeds["X"])  # seeded


def test_dynamic_batch_defaults_to_one_and_dims_override_by_input_axis():
    assert generate_feeds([X])["X"].shape == (1, 16)
    unnamed = InputSpec("t", (None, None), "tensor(float)")
    assert generate_feeds([unnamed], dims={"t.1": 5})["t"].shape == (1, 5)


def test_dynamic_dimension_without_value_names_the_flag():
    with pytest.raises(BenchError, match=r"'seq' \(input 'ids', axis 1\).*--dim seq=N"):
        generate_feeds([IDS])


def test_every_missing_dynamic_dimension_is_named_at_once():
    specs = [InputSpec("ids", ("N", "seq"), "tensor(int64)"),
             InputSpec("mask", ("N", "seq"), "tensor(int64)"),
             InputSpec("img", ("N", 3, "height", None), "tensor(float)")]
    with pytest.raises(BenchError) as info:
        generate_feeds(specs, dims={"height": 8})
    assert str(info.value) == (
        "the model has 2 dynamic dimension(s) without a value: 'seq' (input 'ids', axis 1), "
        "'img.3' (input 'img', axis 3); give each one with --dim seq=N --dim img.3=N.")


def test_inputs_too_large_to_generate_are_refused():
    with pytest.raises(BenchError, match=r"would take 4096.0 GiB"):
        generate_feeds([IDS], dims={"seq": 2**39})


def test_unknown_dim_and_fixed_batch_mismatch_are_errors():
    with pytest.raises(BenchError, match="--dim sequence matches no dynamic dimension"):
        generate_feeds([IDS], dims={"seq": 4, "sequence": 4})
    fixed = InputSpec("X", (1, 16), "tensor(float)")
    with pytest.raises(BenchError, match="fixes its batch dimension to 1"):
        generate_feeds([fixed], batch=8)


@pytest.mark.parametrize("bad", ["seq", "seq=", "seq=0", "seq=x", "=3"])
def test_parse_dims_rejects_malformed(bad):
    with pytest.raises(BenchError, match="NAME=N"):
        parse_dims([bad])


def test_npz_by_name_and_positional(tmp_path):
    x = np.zeros((2, 16), np.float32)
    np.savez(tmp_path / "named.npz", X=x)
    np.savez(tmp_path / "plain.npz", x)  # arr_0
    for name in ("named.npz", "plain.npz"):
        feeds = load_npz_feeds(tmp_path / name, [X])
        assert list(feeds) == ["X"] and feeds["X"].shape == (2, 16)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"Y": np.zeros((1, 16), np.float32)}, "has no array for model input 'X'"),
        ({"X": np.zeros((1, 16), np.float64)}, r"is float64 but the model input is float32"),
        ({"X": np.zeros((1, 8), np.float32)}, "needs 16 at axis 1"),
        ({"X": np.zeros((16,), np.float32)}, "has 2 dimensions"),
        ({"X": np.zeros((1, 16), np.float32), "Z": np.zeros(1)}, "'Z'.*matches no model input"),
    ],
)
def test_npz_mismatch_is_one_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "in.npz", **arrays)
    with pytest.raises(BenchError, match=message):
        load_npz_feeds(tmp_path / "in.npz", [X])


def test_missing_or_corrupt_npz(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        load_npz_feeds(tmp_path / "none.npz", [X])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(BenchError, match="not a readable .npz"):
        load_npz_feeds(tmp_path / "bad.npz", [X])
