"""Run ``edgeshrink`` with a fault injected at a chosen point (issue #15's fault tests).

``python faults.py ARGS...`` is ``edgeshrink ARGS...`` where ``$EDGESHRINK_FAULT`` is
``POINT:N`` and the process SIGKILLs itself (as ``kill -9`` would) at the N-th time it
reaches POINT:

* ``train``: after the N-th optimizer step of any fine-tuning (mid-epoch);
* ``export``: inside the N-th ONNX export (``export.save_onnx``), the file half-written;
* ``measure``: during the N-th artifact measurement (latency, peak memory);
* ``results``: the N-th write of results.json, its temporary file complete, not renamed;
* ``manifest``: the same for the run folder's manifest.

Without ``$EDGESHRINK_FAULT`` it is a plain run. ``$EDGESHRINK_FAULT_BUDGET`` (seconds)
shortens the latency measurement so that the tests stay fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

POINTS = ("train", "export", "measure", "results", "manifest")


def _die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _Counter:
    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def hit(self) -> bool:
        self.seen += 1
        return self.seen == self.n

    def report(self) -> None:  # N = 0: count the occurrences instead of killing
        print(f"fault point reached {self.seen} times", file=sys.stderr)


def install(point: str, n: int) -> None:
    """Arm the fault ``point`` to fire at its ``n``-th occurrence."""

    count = _Counter(n)
    if n == 0:
        import atexit

        atexit.register(count.report)
    if point == "train":
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(
            lambda *_: _die() if count.hit() else None)
    elif point == "export":
        import edgeshrink.export

        real = edgeshrink.export.save_onnx

        def save(model, path, *a, **k):
            out = real(model, path, *a, **k)
            if count.hit():
                data = Path(out).read_bytes()
                Path(out).write_bytes(data[: len(data) // 2])  # killed while writing
                _die()
            return out

        edgeshrink.export.save_onnx = save
    elif point == "measure":
        from edgeshrink.targets.onnxruntime import OnnxRuntimeTarget

        real_figures = OnnxRuntimeTarget.figures  # every zoo candidate runs in ORT

        def figures(*a, **k):
            if count.hit():
                _die()
            return real_figures(*a, **k)

        OnnxRuntimeTarget.figures = figures
    elif point in ("results", "manifest"):
        name = "results.json" if point == "results" else "edgeshrink-run.json"
        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if Path(dst).name == name and count.hit():
                _die()
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    else:
        raise SystemExit(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")


def main(argv: list[str]) -> None:
    import edgeshrink.study.runner as runner
    from edgeshrink.cli import main as cli_main

    budget = os.environ.get("EDGESHRINK_FAULT_BUDGET")
    if budget:
        runner.run_study.__kwdefaults__["budget_s"] = float(budget)
    fault = os.environ.get("EDGESHRINK_FAULT")
    if fault:
        point, _, n = fault.partition(":")
        install(point, int(n or 1))
    cli_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
