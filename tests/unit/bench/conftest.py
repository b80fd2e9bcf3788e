"""Fixtures: tiny ONNX models (see bench_onnx_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_onnx_models import make_mlp, make_token_model


@pytest.fixture
def mlp_path(tmp_path: Path) -> Path:
    return make_mlp(tmp_path / "mlp.onnx")


@pytest.fixture
def token_path(tmp_path: Path) -> Path:
    return make_token_model(tmp_path / "tokens.onnx")
