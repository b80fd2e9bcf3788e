"""Packed files of the simulated formats: written, smaller, and decoded back exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _tiny import ctx_for
from onnx import numpy_helper

from edgeshrink.export import ort_session, run_onnx
from edgeshrink.packed import PackError, pack_onnx, unpack_onnx
from edgeshrink.quant.lowbit import LowBitConfig
from edgeshrink.quant.nonuniform import KMeansConfig, Po2Config
from edgeshrink.transforms import apply_recipe

CONFIGS = {
    "int3": LowBitConfig(bits=3),
    "ternary": LowBitConfig(scheme="ternary"),
    "binary": LowBitConfig(scheme="binary"),
    "po2-4": Po2Config(bits=4),
    "kmeans-3": KMeansConfig(bits=3, epochs=0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_packed_file_decodes_to_the_dense_file_exactly(tiny, tmp_path, name):
    art = apply_recipe([CONFIGS[name]], ctx_for(tiny, tmp_path, name))
    packed = pack_onnx(art.path)
    assert packed.is_file() and packed.suffix == ".eskp"
    dense = art.path.stat().st_size
    assert packed.stat().st_size < 0.5 * dense, (packed.stat().st_size, dense)
    restored = tmp_path / f"{name}-restored.onnx"
    model = unpack_onnx(packed, restored)
    want = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(art.path)).graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k], got[k]) and want[k].dtype == got[k].dtype for k in want)
    xs = tiny.eval.numpy_batches(64)
    x = next(iter(xs))
    a = run_onnx(ort_session(art.path, 1), x)
    b = run_onnx(ort_session(restored, 1), x)
    assert np.array_equal(a, b)  # the device runs exactly what was measured


def test_bit_packed_rows_come_close_to_the_computed_size(tiny, tmp_path):
    art = apply_recipe([LowBitConfig(scheme="binary")], ctx_for(tiny, tmp_path, "b"))
    computed = art.size_encoded_bytes  # bits x weights + scales: what no file backed before
    packed = pack_onnx(art.path).stat().st_size
    # one codebook per row and the graph itself cost something; never less than the ideal
    assert computed < packed < computed + 3_000, (computed, packed)


def test_not_a_packed_file_is_refused(tmp_path):
    bad = tmp_path / "x.eskp"
    bad.write_bytes(b"ONNX" + b"\0" * 20)
    with pytest.raises(PackError, match="magic"):
        unpack_onnx(bad)


def test_scalar_and_integer_initializers_keep_their_shape(tmp_path):
    from onnx import TensorProto, helper

    zp = numpy_helper.from_array(np.array(3, np.int8), "zp")  # a 0-d QDQ zero point
    w = numpy_helper.from_array(np.array([[1, -2], [0, 4]], np.int8), "w")
    node = helper.make_node("Identity", ["w"], ["y"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info(
        "y", TensorProto.INT8, [2, 2])], initializer=[zp, w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    got = {t.name: numpy_helper.to_array(t) for t in unpack_onnx(pack_onnx(path)).graph.initializer}
    assert got["zp"].shape == () and got["zp"] == 3 and got["w"].dtype == np.int8


def test_the_shipped_decoder_script_restores_the_dense_file(tiny, tmp_path):
    import subprocess
    import sys

    from edgeshrink.packed import write_decoder

    art = apply_recipe([LowBitConfig(scheme="ternary")], ctx_for(tiny, tmp_path, "t"))
    packed = pack_onnx(art.path)
    script = write_decoder(tmp_path / "ship" / "unpack_eskp.py")
    out = tmp_path / "ship" / "t.onnx"
    subprocess.run([sys.executable, str(script), str(packed), str(out)], check=True,
                   cwd=tmp_path / "ship", env={"PATH": "/usr/bin:/bin"})  # no PYTHONPATH
    want = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(art.path)).graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)
