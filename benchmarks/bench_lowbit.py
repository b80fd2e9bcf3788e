"""Simulated quantization: Deep Compression, QAT vs PTQ at 4 bits, AdaRound, low-bit codebooks.

(1) Deep Compression (iterative magnitude pruning + retraining, k-means sharing with
    retrained centroids, Huffman-coded storage) on LeNet-300-100 and LeNet-5: storage
    ratio against the FP32 ONNX file, accuracy (bar: >= 40x, within 0.5 point).
(2) 4-bit weights: post-training min-max vs QAT (LSQ) on LeNet-5 and ResNet-20 (bar: QAT
    recovers at least half of what PTQ loses).
(3) AdaRound and bias correction vs min-max rounding at 3 and 4 bits.
(4) Binary, ternary, k-means, power-of-two, mixed 8/4: accuracy and real packed size.

Accuracy is on each task's held-out eval set: through ONNX Runtime for files it runs
(FP32, decoded k-means, QDQ INT8), through the torch simulation for ``simulated`` ones.

Run alone: ``.venv/bin/python benchmarks/run.py --only lowbit``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

# Deep Compression settings per task (deep_compression_recipe keyword arguments).
DC = {
    "lenet300-mnist": dict(sparsity=0.95, schedule=(0.6, 0.8, 0.9), prune_epochs=4, bits=5,
                           conv_bits=5, distill=0.0),
    "lenet5-mnist": {},  # the recipe's defaults: 94 %, 5-bit codebooks
}


def _load(name: str):
    from edgeshrink.task import load_task
    from edgeshrink.zoo import available

    return load_task(f"zoo:{name}") if name in available() else None


class _Runner:
    def __init__(self, task, work: Path) -> None:
        from edgeshrink.measure.artifact import onnx_outputs
        from edgeshrink.transforms import TransformContext, apply_recipe

        self.task, self.work = task, work
        self._apply, self._ctx = apply_recipe, TransformContext
        base = apply_recipe([], TransformContext(task, work, name="fp32"))
        self.fp32_bytes = base.path.stat().st_size
        self.fp32_acc = task.metric(onnx_outputs(base.path, task.eval), task.eval.targets)

    def run(self, name: str, recipe) -> dict:
        from edgeshrink.measure.artifact import evaluate_outputs, onnx_outputs

        start = time.perf_counter()
        art = self._apply(list(recipe), self._ctx(self.task, self.work, name=name))
        data = self.task.eval
        out = (evaluate_outputs(art.simulate, data) if art.simulate is not None
               else onnx_outputs(art.path, data))
        acc = self.task.metric(out, data.targets)
        size = art.size_encoded_bytes or art.path.stat().st_size
        return {"name": name, "acc": acc, "drop": self.fp32_acc - acc, "bytes": size,
                "ratio": self.fp32_bytes / size, "runtime": art.runtime,
                "seconds": time.perf_counter() - start, "art": art}


def _row(r: dict) -> str:
    return (f"| {r['name']} | {r['acc']:.1f} | {r['drop']:+.1f} | {r['bytes']:,} | "
            f"{r['ratio']:.1f}x | {r['runtime']} | {r['seconds']:.0f} |")


HEAD = ("| candidate | accuracy % | drop (pt) | stored bytes | vs FP32 file | runs as | build s |\n"
        "|---|---|---|---|---|---|---|")


def _deep_compression(work: Path) -> list[str]:
    from edgeshrink.encode import decode, encode_model_weights
    from edgeshrink.quant.nonuniform import deep_compression_recipe

    lines = ["### Deep Compression (prune + retrain -> k-means + retrained centroids -> "
             "Huffman)", "", HEAD]
    for name, kw in DC.items():
        task = _load(name)
        if task is None:
            lines.append(f"| {name}: task not in the zoo | | | | | | |")
            continue
        runner = _Runner(task, work)
        lines.append(f"| {name} FP32 ONNX | {runner.fp32_acc:.1f} | 0.0 | "
                     f"{runner.fp32_bytes:,} | 1.0x | onnxruntime | |")
        r = runner.run(f"{name} deep-compression", deep_compression_recipe(**kw))
        blob = encode_model_weights(r["art"].model)
        exact = all((v == r["art"].model.state_dict()[k].numpy()).all()
                    for k, v in decode(blob).items())
        ok = r["ratio"] >= 40 and r["drop"] <= 0.5
        lines.append(_row(r) + f" {'meets' if ok else 'MISSES'} the 40x / 0.5 pt bar;"
                     f" decodes exactly: {exact}")
    return lines + [""]


def _qat_vs_ptq(work: Path) -> list[str]:
    from edgeshrink.quant.lowbit import LowBitConfig
    from edgeshrink.quant.qat import QatConfig

    lines = ["### Low-bit weights: PTQ (min-max) vs QAT (LSQ, distillation 0.5), activations FP32", "",
             "| task | weights | FP32 % | PTQ % | QAT % | PTQ loss | QAT recovers |",
             "|---|---|---|---|---|---|---|"]
    for name, epochs in (("lenet5-mnist", 3), ("resnet20-mnist", 1)):
        task = _load(name)
        if task is None:
            lines.append(f"| {name} | not in the zoo | | | | | |")
            continue
        runner = _Runner(task, work)
        for bits, gran in ((4, "tensor"), (4, "channel"), (3, "tensor")):
            ptq = runner.run("ptq", (LowBitConfig(bits=bits, granularity=gran),))
            qat = runner.run("qat", (QatConfig(bits=bits, act_bits=0, epochs=epochs,
                                               per_channel=gran == "channel"),))
            loss = ptq["drop"]
            rec = (loss - qat["drop"]) / loss if loss > 0 else float("nan")
            lines.append(f"| {name} | {bits}-bit per {gran} | {runner.fp32_acc:.1f} | "
                         f"{ptq['acc']:.1f} | "
                         f"{qat['acc']:.1f} | {loss:+.1f} | "
                         f"{'n/a (PTQ loses nothing)' if loss <= 0 else f'{100 * rec:.0f} %'} |")
    return lines + [""]


def _advanced(work: Path) -> list[str]:
    from edgeshrink.quant.advanced import AdvancedPtqConfig
    from edgeshrink.quant.lowbit import LowBitConfig

    lines = ["### Advanced PTQ vs min-max rounding (weights only, per-tensor scales)", "",
             "| task | bits | min-max % | bias correction % | AdaRound % | FP32 % |",
             "|---|---|---|---|---|---|"]
    for name in ("lenet5-mnist", "resnet20-mnist"):
        task = _load(name)
        if task is None:
            continue
        runner = _Runner(task, work)
        for bits in (4, 3):
            accs = [runner.run("a", (cfg,))["acc"] for cfg in (
                LowBitConfig(bits=bits, granularity="tensor"),
                AdvancedPtqConfig(bits=bits, granularity="tensor", method="bias_correction"),
                AdvancedPtqConfig(bits=bits, granularity="tensor", iters=300))]
            lines.append(f"| {name} | {bits} | " + " | ".join(f"{a:.1f}" for a in accs)
                         + f" | {runner.fp32_acc:.1f} |")
    return lines + [""]


def _codebooks(work: Path) -> list[str]:
    from edgeshrink.study.plans.lowbit import lowbit_candidates

    task = _load("lenet5-mnist")
    runner = _Runner(task, work)
    lines = ["### Low-bit candidates on lenet5-mnist (`study.plans.lowbit.lowbit_candidates`)",
             "", HEAD,
             f"| FP32 ONNX | {runner.fp32_acc:.1f} | 0.0 | {runner.fp32_bytes:,} | 1.0x | "
             "onnxruntime | |"]
    for spec in lowbit_candidates(task):
        if spec.name != "deep-compression":  # in its own table
            lines.append(_row(runner.run(spec.name, spec.recipe)))
    return lines + ["", "Sizes: simulated rows are the packed form (bits x weights + FP32 "
                    "scales, rest FP32); k-means is the Huffman-coded storage; qat-int8 is "
                    "the QDQ ONNX file.", ""]


def run(ctx=None, *, echo: bool = False) -> str:
    import torch

    torch.set_num_threads(2)
    work = Path(ctx.work if ctx is not None else tempfile.mkdtemp(prefix="bench-lowbit-"))
    work.mkdir(parents=True, exist_ok=True)
    parts: list[str] = []
    for section in (_deep_compression, _codebooks, _advanced, _qat_vs_ptq):
        lines = section(work)
        if echo:  # sections take minutes each on 2 busy cores: show them as they finish
            print("\n".join(lines), flush=True)
        parts += lines
    return "\n".join(parts)


if __name__ == "__main__":
    run(None, echo=True)
