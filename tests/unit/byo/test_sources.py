"""Reading a user's data: .npz keys, CSV label columns, image folders; bad data is one
sentence."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.byo.sources import DataOptions, read_data
from edgeshrink.errors import UserError


def test_npz_inputs_and_labels_by_key(tmp_path):
    x = np.arange(24, dtype=np.float64).reshape(6, 1, 2, 2)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6))
    (got,), labels = read_data(tmp_path / "d.npz")
    assert got.dtype == np.float32 and np.array_equal(got, x)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5]
    np.savez(tmp_path / "u.npz", inputs=x)
    assert read_data(tmp_path / "u.npz")[1] is None


def test_npz_with_several_inputs_and_a_wrong_key(tmp_path):
    np.savez(tmp_path / "m.npz", x0=np.zeros((3, 4)), x1=np.ones((3, 2), np.int64))
    inputs, _ = read_data(tmp_path / "m.npz")
    assert [a.shape for a in inputs] == [(3, 4), (3, 2)] and inputs[1].dtype == np.int64
    np.savez(tmp_path / "w.npz", images=np.zeros((3, 4)))
    with pytest.raises(UserError, match="holds images; put the inputs under 'x'"):
        read_data(tmp_path / "w.npz")


def test_csv_features_and_label_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    (x,), y = read_data(tmp_path / "t.csv")
    assert x.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 1]
    (x,), y = read_data(tmp_path / "t.csv", DataOptions(label_column="a"))
    assert x.tolist() == [[2, 0], [4, 1], [6, 1]] and y.tolist() == [1, 3, 5]
    (tmp_path / "r.csv").write_text("a,target\n1,0.5\n2,1.5\n")
    assert read_data(tmp_path / "r.csv")[1].dtype == np.float64  # regression labels stay real
    with pytest.raises(UserError, match="no column 'z'"):
        read_data(tmp_path / "t.csv", DataOptions(label_column="z"))


def _images(root, mode: str, size=(4, 4)):
    from PIL import Image

    for c, label in enumerate(("cat", "dog")):
        (root / label).mkdir(parents=True)
        for i in range(2):
            value = 50 * c + 100 * i
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            Image.fromarray(np.full(shape, value, np.uint8), mode).save(root / label / f"{i}.png")


def test_image_folder_labels_resize_and_normalisation(tmp_path):
    _images(tmp_path / "g", "L")
    (x,), y = read_data(tmp_path / "g")
    assert x.shape == (4, 1, 4, 4) and y.tolist() == [0, 0, 1, 1]
    assert x[3, 0, 0, 0] == pytest.approx(150 / 255)
    (x,), _ = read_data(tmp_path / "g", DataOptions(input_size=(2, 3), mean=(0.5,), std=(0.25,)))
    assert x.shape == (4, 1, 2, 3)
    assert x[1, 0, 0, 0] == pytest.approx((100 / 255 - 0.5) / 0.25, abs=1e-6)
    _images(tmp_path / "c", "RGB")
    (x,), _ = read_data(tmp_path / "c", DataOptions(mean=(0.0, 0.5, 1.0)))
    assert x.shape == (4, 3, 4, 4)
    assert x[0, :, 0, 0].tolist() == pytest.approx([0.0, -0.5, -1.0])


def test_image_folder_mistakes_are_one_sentence(tmp_path):
    _images(tmp_path / "c", "RGB")
    with pytest.raises(UserError, match="--mean has 2 values for images of 3 channel"):
        read_data(tmp_path / "c", DataOptions(mean=(0.1, 0.2)))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no images in class sub-folders"):
        read_data(tmp_path / "empty")
    with pytest.raises(UserError, match=r"must be an \.npz, a \.csv"):
        (tmp_path / "d.txt").write_text("1")
        read_data(tmp_path / "d.txt")
