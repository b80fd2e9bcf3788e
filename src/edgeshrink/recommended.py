"""``RUN/recommended/``: the file the device's runtime loads, every file beside it that it
needs, and a README with that runtime's own loading code.

What is copied is what the candidate's target ships (:meth:`Target.shipped_files`: the
``.tflite`` and its C header for a microcontroller, the OpenVINO ``.xml`` and ``.bin``, the
QDQ ``.onnx`` TensorRT builds its engine from); the README shows how that runtime loads it
(:meth:`Target.loading_code`, the one place each runtime's snippet is kept): the LiteRT
interpreter, the ExecuTorch runtime, TensorFlow Lite Micro with the C header, the
``trtexec`` lines. An ONNX Runtime snippet appears only for a file ONNX Runtime runs.

Example:
    >>> copy_recommended("runs/demo", load_run("runs/demo"), rec)  # doctest: +SKIP
    PosixPath('runs/demo/recommended')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord

__all__ = ["copy_recommended", "clear_recommended", "shipped_files", "loading_code",
           "readme_text"]

_README = """# {candidate} for {device}

Recommended by edgeshrink for **{description}** (priority: {priority}).

{reasons}

## Run it with {label}

Files: {files}.

{code}
On the device the runtime is: {runtime}.
{not_timed}
## Measure it on the device

{measure}
Figures above marked "estimate" are roofline estimates from the device profile; a bench
JSON measured on the device replaces them (`edgeshrink recommend RUN --device {device}
--bench-json bench-{device}.json`).
"""

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def _md(text: str) -> str:
    """``text`` as literal Markdown: names from models and plans may hold ``*``, ``<``, ..."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


# ---------------------------------------------------------------- what ships


def _runtime(cand: CandidateRecord) -> str:
    return "onnxruntime" if cand.runtime in ("simulated", "", None) else str(cand.runtime)


def _artifact(run_dir: Path, cand: CandidateRecord):
    from edgeshrink.transforms import Artifact

    return Artifact(path=run_dir / cand.artifact, model=None, precision=cand.precision,
                    runtime=_runtime(cand), notes=dict(cand.notes or {}))


def _resolve(p: Path | str, run_dir: Path, src: Path) -> Path | None:
    """A shipped file as recorded (absolute, relative to the run, or a name beside the
    artifact); the run folder may have moved since the study wrote it."""
    p = Path(p)
    # an absolute path points into the folder as the study wrote it: prefer the copy here
    order = (src.parent / p.name, p) if p.is_absolute() else (run_dir / p, src.parent / p.name)
    for cand in order:
        if cand.is_file():
            return cand
    return None


def shipped_files(run_dir: Path | str, cand: CandidateRecord) -> list[Path]:
    """Every file of ``cand`` that goes to the device, the artifact first.

    Raises:
        UserError: one of them is missing (the study must be re-run).
    """
    from edgeshrink.targets import get_target

    run_dir = Path(run_dir)
    src = run_dir / cand.artifact
    runtime = _runtime(cand)
    try:
        listed = list(get_target(runtime).shipped_files(_artifact(run_dir, cand)))
    except UserError:  # a runtime this install does not know: the artifact alone
        listed = [src]
    out: list[Path] = []
    for p in [src, *listed]:
        found = _resolve(p, run_dir, src)
        if found is None:
            raise UserError(f"{Path(p).name}, a file {cand.name} ships with, is missing from "
                            f"{run_dir}; re-run the study.")
        if found.resolve() not in {o.resolve() for o in out}:
            out.append(found)
    return out


# ---------------------------------------------------------------- how it loads


def loading_code(run_dir: Path | str, cand: CandidateRecord) -> str:
    """The README's snippet: the target's own :meth:`Target.loading_code`, the one source of
    each runtime's loading code (fenced as Python where the target gives a bare snippet)."""
    from edgeshrink.targets import get_target

    name = Path(cand.artifact).name
    try:
        code = get_target(_runtime(cand)).loading_code(_artifact(Path(run_dir), cand),
                                                       file_name=name).strip()
    except UserError:  # a runtime this install does not know
        code = ""
    if not code:
        return f"Load `{name}` with {_runtime(cand)}.\n"
    return (code if "```" in code else f"```python\n{code}\n```") + "\n"


def _measure_text(cand: CandidateRecord, device: str, threads: int) -> str:
    name, runtime = Path(cand.artifact).name, _runtime(cand)
    if runtime == "tensorrt":
        return ("Time the engine with the second `trtexec` line above (`--loadEngine`); "
                "its median is the device's latency.\n")
    if runtime == "litert" and (cand.notes or {}).get("c_header"):
        return ("On the microcontroller, time `interpreter.Invoke()` with the board's cycle "
                "counter (DWT->CYCCNT on a Cortex-M); on a Linux host:\n\n"
                f"```\nedgeshrink bench {name} --threads {threads} --json > bench-{device}.json\n```\n")
    return f"```\nedgeshrink bench {name} --threads {threads} --json > bench-{device}.json\n```\n"


def readme_text(run_dir: Path | str, run: RunRecord, rec: dict[str, Any],
                files: list[Path]) -> str:
    """The README of ``recommended/`` for ``rec`` (a recommendation record)."""
    from edgeshrink.devices import load_profile
    from edgeshrink.targets import get_target

    cand = run.get(rec["candidate"])
    profile = load_profile(rec["device"])
    try:
        label = get_target(_runtime(cand)).label or _runtime(cand)
    except UserError:
        label = _runtime(cand)
    if (cand.notes or {}).get("c_header"):
        label = "TensorFlow Lite Micro"
    not_timed = (cand.notes or {}).get("not_timed_here")
    return _README.format(
        candidate=_md(cand.name), device=_md(profile.name),
        description=_md(profile.description), priority=rec["priority"],
        reasons="\n".join(f"- {_md(r)}" for r in rec["reasons"]), label=label,
        files=", ".join(f"`{p.name}`" for p in files),
        code=loading_code(run_dir, cand),
        runtime=profile.runtime or label,
        not_timed=f"\n{_md(not_timed)}\n" if not_timed else "",
        measure=_measure_text(cand, _md(profile.name), profile.threads))


# ---------------------------------------------------------------- the folder


def copy_recommended(run_dir: Path | str, run: RunRecord, rec: dict[str, Any]) -> Path:
    """Copy the recommended candidate's shipped files to ``RUN/recommended/`` with a README
    for the device's runtime.

    The folder is built under a temporary name and renamed, so it is never half-written.
    """
    import os
    import shutil
    import tempfile

    from edgeshrink.results import atomic_write_text

    run_dir = Path(run_dir)
    cand = run.get(rec["candidate"])
    src = run_dir / cand.artifact
    if not src.is_file():
        raise UserError(f"artifact {src} of {cand.name} is missing; re-run the study.")
    files = shipped_files(run_dir, cand)
    tmp = Path(tempfile.mkdtemp(prefix=".recommended.", dir=run_dir))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 ignores the user's umask
        for f in files:
            shutil.copy2(f, tmp / f.name)
        if rec.get("estimates", {}).get(cand.name, {}).get("size_form") == "packed file":
            # what ships, and the decoder that expands it at load
            from edgeshrink.packed import write_decoder

            shutil.copy2(run_dir / cand.notes["packed_artifact"], tmp)
            write_decoder(tmp / "unpack_eskp.py")
        atomic_write_text(tmp / "README.md", readme_text(run_dir, run, rec, files))
        if not (cand.notes or {}).get("c_header"):  # the monitor runs in Python, not on an MCU
            from edgeshrink.monitor.handover import write_monitor_files  # monitor-profile.json

            base = run.baseline
            write_monitor_files(run_dir, cand.name, cand.artifact, base and base.name,
                                base and base.artifact, tmp)
        dest, old = run_dir / "recommended", run_dir / ".recommended.old"
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def clear_recommended(run_dir: Path | str) -> None:
    """Remove ``RUN/recommended/``: a failed recommendation leaves no stale pick behind."""
    import os
    import shutil
    import tempfile

    dest = Path(run_dir) / "recommended"
    if dest.exists():  # rename first: readers see the folder or nothing, never half of it
        tmp = Path(tempfile.mkdtemp(prefix=".recommended.gone.", dir=run_dir))
        os.replace(dest, tmp / "recommended")
        shutil.rmtree(tmp, ignore_errors=True)
