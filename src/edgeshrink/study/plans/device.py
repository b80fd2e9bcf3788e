"""The plan of ``edgeshrink study --device D`` without ``--plan``: candidates in the device's
own runtimes and formats (docs/tasks-and-plans.md, "Device-driven plans", states the rule).

For each runtime the profile lists (preferred first), its fp32 file where the study does
not already have it (the baseline is ONNX Runtime's) and one file per accelerated format.
Whenever speed or size can bind (a ``speed``, ``size`` or ``energy`` priority, or a
``--max-size`` / ``--max-latency`` / ``--max-energy`` limit), structured channel pruning
(30 % and 50 % of the MACs, fine-tuned with distillation) then INT8 in the preferred
runtime's INT8 format, and 50 % alone in its fp32 format. Sparse weights only where they
pay: 2:4 where the profile accelerates 2:4, unstructured 80 % where it accelerates
unstructured sparsity, or where the user asked for size (``--priority size``) on a device
that loads its weights into RAM from a packed ONNX file.

Example:
    >>> [s.name for s in device_plan(task, load_profile("cortex-m7"))]
    ['tflm-int8', 'channels-30mac+tflm-int8', 'channels-50mac+tflm-int8']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from edgeshrink.study.plan import CandidateSpec

__all__ = ["device_plan", "format_step", "speed_or_size_binds", "runtime_missing"]

BINDING = ("speed", "size", "energy")


def runtime_missing(name: str) -> str | None:
    """One sentence when ``name``'s runtime cannot build or run files here, else None: the
    target's own :meth:`~edgeshrink.targets.Target.missing`, and for LiteRT the converter
    that builds ``.tflite`` files besides the interpreter that runs them."""
    from edgeshrink.targets import get_target

    why = get_target(name).missing()
    if why is None and name == "litert":  # the interpreter runs files; building needs more
        from edgeshrink.targets.litert import converter_missing

        why = converter_missing()
    return why


def format_step(runtime, fmt: str):
    """The recipe step that ends in ``runtime``'s own file for format ``fmt``, with the name
    that step gives a candidate; ``None`` where the study's baseline already is that file
    (ONNX Runtime fp32; the fp32/fp16 ONNX file ``trtexec`` builds a TensorRT engine from)."""
    name = runtime.name
    if name == "onnxruntime":
        from edgeshrink.quant.ort import DynamicInt8Config, Fp16Config, StaticInt8Config

        return {"fp16": ("fp16", Fp16Config()), "int8": ("int8-static", StaticInt8Config()),
                "int8-dynamic": ("int8-dynamic", DynamicInt8Config())}.get(fmt)
    if name == "openvino":
        from edgeshrink.quant.openvino import OpenVinoInt8Config

        return ("openvino-int8", OpenVinoInt8Config()) if fmt == "int8" else None
    if name == "litert":
        from edgeshrink.targets.configs import LiteRTConfig

        if runtime.micro:  # TensorFlow Lite Micro: full integer, int8 input and output
            return "tflm-int8", LiteRTConfig(precision="int8", io="int8", micro=True)
        if fmt == "int8":  # MobileNetV2, 400 crops: min-max 70.75 %, this 84.25 % top-1
            return "litert-int8", LiteRTConfig(precision="int8", calibrator="percentile",
                                               bias_correction=True)
        return f"litert-{fmt}", LiteRTConfig(precision=fmt)
    if name == "executorch":
        from edgeshrink.targets.configs import ExecuTorchConfig

        return f"executorch-{fmt}", ExecuTorchConfig(precision=fmt)
    if name == "tensorrt":
        from edgeshrink.targets.configs import TensorRTQDQConfig

        return ("tensorrt-int8-qdq", TensorRTQDQConfig()) if fmt == "int8" else None
    return None


def speed_or_size_binds(profile, priority: str | None = None, limits: Iterable[str] = ()) -> bool:
    """Whether fewer MACs or bytes can change the answer: the priority (``priority``, else the
    profile's default) is speed, size or energy, or a size/latency/energy limit was given."""
    return (priority or profile.default_priority) in BINDING or bool(set(limits))


def device_plan(task, profile, *, finetune_epochs: int = 3, priority: str | None = None,
                limits: Iterable[str] = (),
                on_note: Callable[[str], None] | None = None) -> list[CandidateSpec]:
    """The candidates a study builds for ``profile`` (a :class:`~edgeshrink.devices.Profile`).

    ``priority`` is the user's ``--priority`` (None: the profile's default), ``limits`` the
    names of the limits given (``size``, ``latency``, ``energy``). A runtime missing on this
    machine is skipped; ``on_note`` gets one sentence saying so.
    """
    from edgeshrink.targets import load_builders
    from edgeshrink.task import has_labels
    from edgeshrink.train import FinetuneConfig
    from edgeshrink.transforms import HANDLERS

    load_builders()  # each target module registers the step that builds its file
    note = on_note or (lambda _text: None)
    runtimes, built = [], []
    for r in profile.shipped_runtimes():
        why = runtime_missing(r.name)
        steps = [s for f in r.formats if (s := format_step(r, f))]
        unbuilt = sorted({s[1].kind for s in steps if type(s[1]) not in HANDLERS})
        if why is None and unbuilt:
            why = f"this version has no builder for {', '.join(unbuilt)} yet."
        if why:
            note(f"{r.name} candidates skipped: {why}")
        else:
            runtimes.append(r)
            built += steps
    specs = [CandidateSpec(name, (cfg,)) for name, cfg in built]
    # the compressed file of the preferred runtime: its int8 format, else its first one built
    quant = next((format_step(r, "int8") for r in runtimes if "int8" in r.formats), None)
    if quant is None and runtimes:
        quant = next((s for f in runtimes[0].formats if (s := format_step(runtimes[0], f))),
                     None)
    plain = format_step(runtimes[0], "fp32") if runtimes and "fp32" in runtimes[0].formats \
        else None

    def ending(prefix: str, recipe: tuple, step) -> CandidateSpec:
        return (CandidateSpec(f"{prefix}+{step[0]}", (*recipe, step[1])) if step
                else CandidateSpec(prefix, recipe))

    labelled = has_labels(task)
    # distilled from the unpruned model, as the pruning plan does (benchmarks/RESULTS.md)
    ft = (FinetuneConfig(epochs=finetune_epochs, distill=0.5),) if labelled else ()
    if runtimes and speed_or_size_binds(profile, priority, limits):
        from edgeshrink.prune.structured import StructuredConfig

        # without labels to fine-tune on, only the gentler cut
        for pct in (30, 50) if labelled else (30,):
            cut = (StructuredConfig(macs_reduction=pct / 100, importance="taylor"), *ft)
            specs.append(ending(f"channels-{pct}mac", cut, quant))
        if "fp32" in runtimes[0].formats:
            cut = (StructuredConfig(macs_reduction=0.5 if labelled else 0.3,
                                    importance="taylor"), *ft)
            specs.append(ending(f"channels-{50 if labelled else 30}mac", cut, plain))
    if runtimes and profile.supports("2:4"):
        from edgeshrink.prune.nm import NMConfig

        specs.append(ending("nm-2:4", (NMConfig(n=2, m=4), *ft), quant))
    if runtimes and profile.supports("unstructured"):
        from edgeshrink.prune.unstructured import UnstructuredConfig

        specs.append(ending("prune-80", (UnstructuredConfig(sparsity=0.8), *ft), quant))
    elif (priority == "size" and profile.weights_in == "ram"
          and any(r.name == "onnxruntime" for r in runtimes)):
        # storage asked for: zeros only shrink the packed ONNX file a device unpacks into RAM
        from edgeshrink.prune.unstructured import UnstructuredConfig
        from edgeshrink.quant.ort import StaticInt8Config

        specs.append(CandidateSpec("prune-80+int8-static", (
            UnstructuredConfig(sparsity=0.8), *ft, StaticInt8Config())))
    if not specs:
        note(f"no runtime of {profile.name} can build files here: the study measures the "
             "ONNX baseline only.")
    seen, unique = set(), []
    for spec in specs:
        if spec.name not in seen:
            seen.add(spec.name)
            unique.append(spec)
    return unique
