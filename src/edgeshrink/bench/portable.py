"""A single-file copy of ``edgeshrink bench`` for a device: a zipapp (PEP 441).

It holds ``edgeshrink/__init__.py``, ``edgeshrink/errors.py``, ``edgeshrink/bench/`` (the
LiteRT and ExecuTorch sessions ``rt_*.py`` included) and ``edgeshrink/monitor/``, nothing
else, so it runs wherever numpy and the model's runtime are installed (onnxruntime,
ai-edge-litert or executorch; a missing one is named in one sentence, exit 2):
``python3 edgeshrink-bench.pyz model.tflite --threads 4`` benchmarks, and
``python3 edgeshrink-bench.pyz monitor run model.onnx ...`` monitors.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["write_pyz", "PORTABLE_FILES"]

# Files of the package the bench path needs, relative to the edgeshrink package folder.
PORTABLE_FILES = ("__init__.py", "errors.py")
_HOST_ONLY = ("merge.py",)  # imports edgeshrink.results: used on the host only
_PACKAGES = ("bench", "monitor")  # sub-packages that run on the device
_MAIN = """import sys
if sys.argv[1:2] == ["monitor"]:
    from edgeshrink.monitor.cli import main
    sys.exit(main(sys.argv[2:]))
from edgeshrink.bench.cli import main
sys.exit(main())
"""


def write_pyz(path: str | os.PathLike) -> Path:
    """Write the zipapp to ``path`` (atomically) and return the path.

    Example:
        >>> write_pyz("/tmp/edgeshrink-bench.pyz").suffix
        '.pyz'
    """
    from edgeshrink.bench.session import BenchError

    path = Path(path)
    if path.is_dir():
        raise BenchError(f"--write-pyz {path} is a folder; give the file to write, e.g. "
                         f"{path / 'edgeshrink-bench.pyz'}.")
    pkg = Path(__file__).resolve().parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(b"#!/usr/bin/env python3\n")  # as zipapp does: ./edgeshrink-bench.pyz runs
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("__main__.py", _MAIN)
                for name in PORTABLE_FILES:
                    zf.write(pkg / name, f"edgeshrink/{name}")
                for sub in _PACKAGES:
                    for src in sorted((pkg / sub).glob("*.py")):
                        if src.name not in _HOST_ONLY:
                            zf.write(src, f"edgeshrink/{sub}/{src.name}")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # executable, as the user's umask allows
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
