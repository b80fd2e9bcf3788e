"""expected_shift: a layer's output shift from its weight error, against torch's conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeshrink.quant.biascorr import expected_shift


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_shift_is_the_conv_of_the_weight_error_on_a_constant_input(groups):
    rng = np.random.default_rng(0)
    err = rng.standard_normal((6, 6 // groups, 3, 3))
    mean = rng.standard_normal(6)
    x = torch.from_numpy(np.broadcast_to(mean[None, :, None, None], (1, 6, 5, 5)).copy())
    ref = torch.nn.functional.conv2d(x, torch.from_numpy(err), groups=groups)[0, :, 0, 0]
    np.testing.assert_allclose(expected_shift(err, mean, groups), ref.numpy(), rtol=1e-12)


def test_a_linear_weight_is_a_matrix_product():
    err = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(expected_shift(err, np.array([1.0, 0.0, 2.0])), [4.0, 13.0])
