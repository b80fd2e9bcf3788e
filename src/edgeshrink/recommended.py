"""``RUN/recommended/``: the file the device's runtime loads, every file beside it that it
needs, and a README with that runtime's own loading code.

What is copied is what the candidate's target ships (:meth:`Target.shipped_files`: the
``.tflite`` and its C header for a microcontroller, the OpenVINO ``.xml`` and ``.bin``, the
QDQ ``.onnx`` TensorRT builds its engine from); the README shows how that runtime loads it
(:meth:`Target.loading_code`, else the default for the runtime kept here): the LiteRT
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


def _default_files(runtime: str, src: Path, notes: dict) -> list[Path | str]:
    """Files a runtime needs beside the artifact, where its target does not say yet."""
    if runtime == "openvino":
        return [src.with_suffix(".bin")]
    if runtime == "litert" and notes.get("c_header"):
        return [notes["c_header"]]
    return []


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
    for p in [src, *listed, *_default_files(runtime, src, cand.notes or {})]:
        found = _resolve(p, run_dir, src)
        if found is None:
            raise UserError(f"{Path(p).name}, a file {cand.name} ships with, is missing from "
                            f"{run_dir}; re-run the study.")
        if found.resolve() not in {o.resolve() for o in out}:
            out.append(found)
    return out


# ---------------------------------------------------------------- how it loads


def loading_code(run_dir: Path | str, cand: CandidateRecord, *, threads: int = 1) -> str:
    """The README's snippet: the target's own :meth:`Target.loading_code` where it has
    one, else the default for the candidate's runtime."""
    from edgeshrink.targets import get_target

    run_dir = Path(run_dir)
    name = Path(cand.artifact).name
    try:
        code = get_target(_runtime(cand)).loading_code(_artifact(run_dir, cand), file_name=name)
    except Exception:  # noqa: BLE001 - a file the runtime cannot open here gets the default
        code = ""
    if code.strip() and "```" not in code:  # a target's bare snippet: fence it for README.md
        code = f"```python\n{code.strip()}\n```"
    return code.strip() + "\n" if code.strip() else _default_code(run_dir, cand, threads)


def _default_code(run_dir: Path, cand: CandidateRecord, threads: int) -> str:
    name, notes, runtime = Path(cand.artifact).name, cand.notes or {}, _runtime(cand)
    if runtime == "litert" and notes.get("c_header"):
        return _tflm_code(run_dir, cand)
    if runtime == "tensorrt":
        from edgeshrink.targets.tensorrt import trtexec_snippet

        return trtexec_snippet(name)
    return _SNIPPETS.get(runtime, _SNIPPETS["onnxruntime"]).format(artifact=name,
                                                                   threads=threads)


_SNIPPETS = {
    "onnxruntime": """```python
import numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = {threads}
sess = ort.InferenceSession("{artifact}", opts, providers=["CPUExecutionProvider"])
x = np.zeros([d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape], np.float32)
print(sess.run(None, {{sess.get_inputs()[0].name: x}})[0].shape)
```
""",
    "openvino": """```python
import numpy as np, openvino as ov
compiled = ov.Core().compile_model("{artifact}", "CPU", {{"INFERENCE_NUM_THREADS": {threads}}})
x = np.zeros([d.get_length() if d.is_static else 1 for d in compiled.input(0).partial_shape],
             np.float32)
print(compiled([x])[compiled.output(0)].shape)
```
""",
    "litert": """```python
import numpy as np
from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert
interp = Interpreter(model_path="{artifact}", num_threads={threads})
interp.allocate_tensors()
inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))  # int8 io: quantize
interp.invoke()                                                         # with inp["quantization"]
print(interp.get_tensor(out["index"]).shape)
```
""",
    "executorch": """```python
import torch
from executorch.runtime import Runtime  # pip install executorch
method = Runtime.get().load_program("{artifact}").load_method("forward")
meta = method.metadata.input_tensor_meta(0)
print(method.execute([torch.zeros(list(meta.sizes()))])[0].shape)
```

In C++ the same file loads with `executorch::extension::Module module("{artifact}");`
and `module.forward(...)`; link the XNNPACK backend, which runs its delegated graph.
""",
}


def _c_array_name(header: Path | None, stem: str) -> str:
    """The byte array a C header defines (``const unsigned char NAME[] = ...``)."""
    if header is not None and header.is_file():
        hit = re.search(r"(?:unsigned\s+char|uint8_t)\s+(\w+)\s*\[", header.read_text(
            errors="replace")[:4000])
        if hit:
            return hit.group(1)
    return re.sub(r"\W", "_", stem) + "_tflite"


def _tflm_code(run_dir: Path, cand: CandidateRecord) -> str:
    notes = cand.notes or {}
    src = run_dir / cand.artifact
    header = _resolve(notes["c_header"], run_dir, src)
    hname = Path(notes["c_header"]).name
    array = _c_array_name(header, src.stem)
    arena = int(notes.get("arena_bytes") or 0)
    arena_line = (f"constexpr int kArenaSize = {arena} + 1024;  // estimated arena + margin"
                  if arena else "constexpr int kArenaSize = 64 * 1024;  // no arena estimate")
    ops = notes.get("ops") if isinstance(notes.get("ops"), list) else None
    resolver = (f"tflite::MicroMutableOpResolver<{len(ops)}> resolver;  // {', '.join(ops)}"
                if ops else "tflite::MicroMutableOpResolver<16> resolver;  // add the model's ops")
    return f"""TensorFlow Lite Micro (C++), with the model compiled in from `{hname}`:

```cpp
#include "{hname}"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

{arena_line}
alignas(16) static uint8_t tensor_arena[kArenaSize];

int run_once() {{
  const tflite::Model* model = tflite::GetModel({array});
  {resolver}
  // resolver.AddConv2D(); resolver.AddFullyConnected(); ... one call per op of the model
  tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return -1;  // arena too small
  TfLiteTensor* input = interpreter.input(0);   // int8: quantize with input->params
  // ... fill input->data.int8 ...
  if (interpreter.Invoke() != kTfLiteOk) return -1;
  return interpreter.output(0)->data.int8[0];
}}
```

The `.tflite` beside it is the same model, for the LiteRT interpreter on a host.
"""


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
        code=loading_code(run_dir, cand, threads=profile.threads),
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
