"""Opening a model in ONNX Runtime, with every failure turned into one clear sentence.

Only the standard library, numpy and onnxruntime may be imported anywhere in
``edgeshrink.bench``: this code runs on the device, where nothing else is installed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgeshrink.errors import UserError

__all__ = [
    "BenchError",
    "open_session",
    "model_files",
    "model_size_bytes",
    "sha256_file",
    "DEFAULT_PROVIDER",
]

DEFAULT_PROVIDER = "CPUExecutionProvider"


class BenchError(UserError):
    """A bad input to ``edgeshrink bench``: one sentence on stderr, exit code 2."""


def import_ort():
    """The onnxruntime module, or a BenchError saying how to install it (on a device the
    portable bench may find only numpy)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BenchError(f"onnxruntime cannot be imported ({exc}); install it on this machine "
                         "with `pip install onnxruntime` (or your board's wheel).") from None
    return onnxruntime


def _check_model_path(path: Path) -> None:
    if not path.exists():
        raise BenchError(f"model file {path} does not exist; give the path of an .onnx file.")
    if not path.is_file():
        raise BenchError(f"{path} is not a file; give the path of an .onnx file.")


def model_files(path: str | os.PathLike) -> list[Path]:
    """The model file and its external-data sidecar, if one sits beside it.

    ``torch.onnx.export`` writes weights over 2 GB (and, with ``external_data=True``, all of
    them) to ``MODEL.onnx.data``; both files must be copied to the device.
    """
    path = Path(path)
    sidecar = path.with_name(path.name + ".data")
    return [path, sidecar] if sidecar.is_file() else [path]


def model_size_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of the model, external-data sidecar included."""
    return sum(p.stat().st_size for p in model_files(path))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> len(sha256_file(__file__))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _session_options(threads: int):
    ort = import_ort()

    so = ort.SessionOptions()
    # threads == 0 keeps ONNX Runtime's default (one intra-op thread per physical core).
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: warnings would interleave with our output
    return so


def _check_provider(provider: str) -> None:
    ort = import_ort()

    available = ort.get_available_providers()
    if provider not in available:
        raise BenchError(
            f"execution provider {provider!r} is not available in this onnxruntime; "
            f"choose one of {', '.join(available)}."
        )


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_session(path: str | os.PathLike, *, threads: int = 1, provider: str = DEFAULT_PROVIDER):
    """An ``onnxruntime.InferenceSession`` for ``path`` with ``threads`` intra-op threads.

    Raises:
        BenchError: the file is missing, not a loadable ONNX model, or the provider is absent.

    Example:
        >>> sess = open_session("model.onnx", threads=2)  # doctest: +SKIP
        >>> [i.name for i in sess.get_inputs()]  # doctest: +SKIP
        ['input']
    """
    ort = import_ort()

    path = Path(path)
    _check_model_path(path)
    if threads < 0:
        raise BenchError(f"threads must be >= 0 (0 = ONNX Runtime's default), got {threads}.")
    _check_provider(provider)
    try:
        return ort.InferenceSession(
            str(path), sess_options=_session_options(threads), providers=[provider]
        )
    except Exception as exc:  # ORT raises its own (pybind) exception types
        raise BenchError(
            f"{path} is not a loadable ONNX model ({_first_line(exc)}); re-export it or "
            "check that the copy is complete."
        ) from None
