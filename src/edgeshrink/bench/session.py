"""Opening a model in the runtime its file is for, with every failure turned into one clear
sentence.

``.onnx`` opens in ONNX Runtime, ``.tflite`` in LiteRT (:mod:`edgeshrink.bench.rt_litert`),
``.pte`` in ExecuTorch (:mod:`edgeshrink.bench.rt_executorch`). Each session looks like an
``onnxruntime.InferenceSession``: ``get_inputs()`` / ``get_outputs()`` (``.name``, ``.shape``,
``.type`` as ``"tensor(float)"``) and ``run(None, feeds) -> list of arrays``.

Only the standard library, numpy and the one runtime the file needs may be imported anywhere
in ``edgeshrink.bench``: this code runs on the device, where nothing else is installed. The
runtimes are imported on first use, so a device with only ``ai-edge-litert`` benches
``.tflite`` files.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgeshrink.errors import UserError

__all__ = [
    "BenchError",
    "Runtime",
    "RUNTIMES",
    "runtime_for",
    "runtime_version",
    "open_session",
    "model_files",
    "model_size_bytes",
    "sha256_file",
    "DEFAULT_PROVIDER",
]

DEFAULT_PROVIDER = "CPUExecutionProvider"


class BenchError(UserError):
    """A bad input to ``edgeshrink bench``: one sentence on stderr, exit code 2."""


@dataclass(frozen=True)
class Runtime:
    """A runtime ``edgeshrink bench`` can open files in.

    Attributes:
        name: what reports call it (``onnxruntime``, ``litert``, ``executorch``).
        label: what a person reads.
        suffix: the file suffix it opens.
        module: the ``edgeshrink.bench`` module with ``open_session(path, threads=1)``
            (None: ONNX Runtime, opened here).
        package: the pip distribution that installs the runtime (its version is reported).
        import_name: the runtime's top-level Python module.
    """

    name: str
    label: str
    suffix: str
    module: str | None
    package: str
    import_name: str

    def info(self) -> dict[str, str | None]:
        """What a report records: ``{"name", "label", "package", "version"}``."""
        return {"name": self.name, "label": self.label, "package": self.package,
                "version": runtime_version(self)}


RUNTIMES = {
    ".onnx": Runtime("onnxruntime", "ONNX Runtime", ".onnx", None, "onnxruntime", "onnxruntime"),
    ".tflite": Runtime("litert", "LiteRT", ".tflite", "edgeshrink.bench.rt_litert",
                       "ai-edge-litert", "ai_edge_litert"),
    ".pte": Runtime("executorch", "ExecuTorch", ".pte", "edgeshrink.bench.rt_executorch",
                    "executorch", "executorch"),
}
_SUFFIXES = ", ".join(RUNTIMES)


def _sniff(path: Path) -> str | None:
    """The suffix a file's header says it is (FlatBuffer identifiers ``TFL3`` / ``ET..`` at
    byte 4), for files named otherwise; None when it says nothing we know."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head[4:8] == b"TFL3":
        return ".tflite"
    if head[4:6] == b"ET" and head[6:8].isdigit():
        return ".pte"
    return None


def runtime_for(path: str | os.PathLike) -> Runtime:
    """The runtime that opens ``path``: by suffix; a file with another suffix by its header,
    else ONNX Runtime (as before .tflite and .pte were supported).

    Example:
        >>> runtime_for("model.tflite").name
        'litert'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in RUNTIMES:
        suffix = _sniff(path) or ".onnx"
    return RUNTIMES[suffix]


def runtime_version(runtime: Runtime) -> str | None:
    """The version of ``runtime`` this process runs: its imported module's ``__version__``
    (``onnxruntime-gpu`` and board wheels install under other names), else the installed
    package's; None if neither is known."""
    import sys
    from importlib import metadata

    version = getattr(sys.modules.get(runtime.import_name), "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version(runtime.package)
    except metadata.PackageNotFoundError:
        return None


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
        raise BenchError(f"model file {path} does not exist; give the path of an {_SUFFIXES} "
                         "file.")
    if not path.is_file():
        raise BenchError(f"{path} is not a file; give the path of an {_SUFFIXES} file.")


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


def _install_hint(rt: Runtime) -> str:
    return f"`pip install {rt.package}`"


def _import_runtime_module(rt: Runtime):
    """The ``edgeshrink.bench`` module that opens ``rt``'s files, or a BenchError naming
    what to install (the module itself, or the runtime it imports)."""
    try:
        return importlib.import_module(rt.module)
    except ImportError as exc:
        if getattr(exc, "name", None) == rt.module:
            raise BenchError(
                f"this copy of edgeshrink bench cannot run {rt.suffix} files ({rt.module} is "
                f"missing); update edgeshrink (or rewrite the .pyz with --write-pyz) and "
                f"install {rt.label} with {_install_hint(rt)}.") from None
        raise BenchError(f"{rt.label} cannot be imported ({exc}); install it on this machine "
                         f"with {_install_hint(rt)}.") from None


def _open_other(rt: Runtime, path: Path, threads: int):
    module = _import_runtime_module(rt)
    try:
        return module.open_session(path, threads=threads)
    except BenchError:
        raise
    except UserError as exc:
        raise BenchError(str(exc)) from None
    except ImportError as exc:  # the runtime is imported when the first file is opened
        raise BenchError(f"{rt.label} cannot be imported ({exc}); install it on this machine "
                         f"with {_install_hint(rt)}.") from None
    except Exception as exc:  # the runtimes' own (pybind / RuntimeError) types
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ImportError):  # a session that wraps the missing import
            raise BenchError(f"{rt.label} cannot be imported ({cause}); install it on this "
                             f"machine with {_install_hint(rt)}.") from None
        raise BenchError(
            f"{path} is not a loadable {rt.suffix} model for {rt.label} ({_first_line(exc)}); "
            "rebuild it or check that the copy is complete.") from None


def open_session(path: str | os.PathLike, *, threads: int = 1, provider: str = DEFAULT_PROVIDER):
    """A session for ``path`` in its runtime (by suffix: :data:`RUNTIMES`) with ``threads``
    threads: an ``onnxruntime.InferenceSession`` for ``.onnx``, a LiteRT or ExecuTorch
    session with the same methods for ``.tflite`` / ``.pte``.

    Raises:
        BenchError: the file is missing or not loadable, its runtime is not installed (the
            sentence names the ``pip install``), or the ORT provider is absent.

    Example:
        >>> sess = open_session("model.onnx", threads=2)  # doctest: +SKIP
        >>> [i.name for i in sess.get_inputs()]  # doctest: +SKIP
        ['input']
    """
    path = Path(path)
    _check_model_path(path)
    if threads < 0:
        raise BenchError(f"threads must be >= 0 (0 = the runtime's default), got {threads}.")
    rt = runtime_for(path)
    if rt.module is not None:
        if provider != DEFAULT_PROVIDER:
            raise BenchError(f"--provider {provider} is an ONNX Runtime setting; {path.name} "
                             f"runs in {rt.label}, on the CPU.")
        return _open_other(rt, path, threads)
    ort = import_ort()
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
