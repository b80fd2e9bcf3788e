"""A fresh Python process that loads a model and runs it: the memory a device owner sees,
unlike an RSS delta inside a warm process that already holds arenas, caches and freed pages.

One way to start it for every caller: ``edgeshrink bench`` in a child
(:func:`edgeshrink.bench.runner.bench_fresh_process`) and the targets' own children
(ExecuTorch, OpenVINO, LiteRT: a script ending in :data:`PRINT_PEAK`). The inputs travel
as an ``.npz``; the child prints one JSON object, as all of its stdout or its last line.

Standard library and numpy only: this module ships in the portable bench.

Example:
    >>> fresh_peak_mb("import numpy as np, sys\\nnp.load(sys.argv[1])", [INPUTS],
    ...               (np.zeros((1, 8), np.float32),))  # doctest: +SKIP
    31.2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_fresh", "fresh_peak_mb", "INPUTS", "PRINT_PEAK"]

INPUTS = "{inputs}"  # an argument with this value becomes the path of the inputs' .npz

# The end of a child script: its high-water mark (VmHWM, Linux). Not ru_maxrss, which
# Linux carries over fork+exec from the parent (see edgeshrink.bench.machine.peak_rss_mb).
PRINT_PEAK = r"""
import json as _json
_hwm = [_l for _l in open("/proc/self/status") if _l.startswith("VmHWM:")][0]
print(_json.dumps({"peak_kb": int(_hwm.split()[1])}))
"""


def _env() -> dict[str, str]:
    """This environment with the edgeshrink this process runs first on PYTHONPATH."""
    import edgeshrink

    root = str(Path(edgeshrink.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _failed(code: int, last: str) -> Exception:
    return RuntimeError(f"the fresh process exited with {code}: {last}")


def run_fresh(args: list[str], inputs: tuple | dict | None = None, *,
              fail: Callable[[int, str], Exception] = _failed, python: str | None = None,
              timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``python ARGS`` in a new process; the JSON object its stdout holds (all of it,
    or its last line).

    Args:
        args: the interpreter's arguments (``["-m", "edgeshrink.bench", ...]`` or
            ``["-c", script, ...]``); one equal to :data:`INPUTS` is replaced by the path
            of an ``.npz`` of ``inputs`` (a tuple: ``arr_0``, ``arr_1``...; a dict: by name).
        fail: makes the exception raised when the child exits non-zero, from its exit code
            and the last line of its stderr.
        python: the interpreter (default: this one).
    """
    with tempfile.TemporaryDirectory(prefix="edgeshrink-fresh-") as tmp:
        npz = str(Path(tmp) / "inputs.npz")
        if inputs is not None:
            (np.savez(npz, **inputs) if isinstance(inputs, dict) else np.savez(npz, *inputs))
        argv = [npz if a == INPUTS else a for a in args]
        proc = subprocess.run([python or sys.executable, *argv], capture_output=True,
                              text=True, env=_env(), timeout=timeout_s)
    if proc.returncode != 0:
        raise fail(proc.returncode, (proc.stderr.strip().splitlines() or ["no message"])[-1])
    out = proc.stdout.strip()
    try:  # the whole of stdout (edgeshrink bench --json), else its last line (after chatter)
        return json.loads(out)
    except ValueError:
        return json.loads(out.splitlines()[-1])


def fresh_peak_mb(script: str, args: list[str], inputs: tuple | dict, *,
                  fail: Callable[[int, str], Exception] = _failed) -> float:
    """Peak resident memory (MiB) of ``python -c SCRIPT ARGS`` (:data:`INPUTS` in ``args``
    becomes the inputs' ``.npz``): the script loads and runs the model, and
    :data:`PRINT_PEAK` reports the process's high-water mark."""
    return run_fresh(["-c", script + PRINT_PEAK, *args], inputs, fail=fail)["peak_kb"] / 1024.0
