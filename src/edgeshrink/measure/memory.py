"""Peak resident memory of a fresh process that loads an ONNX file and runs it once.

A delta inside a warm process hides the runtime's own footprint; a device owner needs
the whole figure, so it is measured in a child process (``ru_maxrss`` of the child).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["peak_memory_mb"]

_CHILD = r"""
import json, resource, sys
import numpy as np, onnxruntime as ort
path, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(npz)
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads
s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
feeds = {i.name: arrays[f"arr_{k}"] for k, i in enumerate(s.get_inputs())}
for _ in range(3):
    s.run(None, feeds)
# VmHWM is this process's own high-water mark; ru_maxrss would include the parent's
# RSS at fork time on Linux (it survives exec).
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    peak_kb = int(hwm.split()[1])
except (OSError, IndexError):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kb": peak_kb}))
"""


def peak_memory_mb(path: Path | str, inputs: tuple[np.ndarray, ...], threads: int = 2) -> float:
    """Peak RSS (MiB) of a new Python process running ``path`` on ``inputs``."""
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "inputs.npz"
        np.savez(npz, *inputs)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(npz), str(threads)],
            capture_output=True, text=True, check=True, timeout=600,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"] / 1024.0
