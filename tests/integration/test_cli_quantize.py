"""`edgeshrink quantize`: writes a real, smaller, runnable file; bad input is exit 2."""

import subprocess
import sys

import numpy as np
import pytest

from edgeshrink.export import ort_session, run_onnx


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "edgeshrink", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_quantize_writes_a_smaller_file_that_runs(tmp_path, digits_task):
    out = tmp_path / "q.onnx"
    result = cli("quantize", "--task", "zoo:lenet5-digits", "--method", "int8_static",
                 "--set", "calibrator=mse", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "int8" in result.stdout
    x = digits_task.eval.inputs[0]
    got = run_onnx(ort_session(out), (x,))
    assert np.mean(got.argmax(1) == digits_task.eval.targets) > 0.95
    assert out.stat().st_size < 0.5 * 55_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "nope"], "unknown quantization method 'nope'"),
        (["--method", "lowbit", "--set", "bits=20"], "bits"),
        (["--method", "int8_static", "--set", "calibrator=magic"], "calibrator must be one of"),
    ],
)
def test_quantize_bad_input_exit_2(tmp_path, args, message):
    result = cli("quantize", "--task", "zoo:lenet5-digits", *args, "--out",
                 str(tmp_path / "q.onnx"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "q.onnx").exists()
