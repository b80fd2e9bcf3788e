"""Shared fixtures: zoo tasks are loaded once per session (trained once, then cached)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits_task():
    from edgeshrink.task import load_task

    return load_task("zoo:lenet5-digits")


@pytest.fixture(scope="session")
def mnist_task():
    from edgeshrink.task import load_task

    return load_task("zoo:lenet5-mnist")
