"""Unstructured, N:M and one-shot pruning on the zoo's real MNIST tasks.

(1) Han et al. 2015 level: LeNet-300-100 and LeNet-5 at >= 90 % unstructured sparsity with
    retraining (one-shot magnitude + fine-tune, with and without distillation; iterative;
    cubic gradual), bar: within 0.5 point of the dense model.
(2) 50 % one-shot sparsity, no retraining: random, magnitude (layer-wise and global),
    Wanda (per output row, the paper's default; per layer; with bias correction),
    SparseGPT-like, and 2:4 by magnitude / Wanda / SparseGPT, on zoo:lenet300-mnist,
    zoo:vit-mnist (when the task exists) and zoo:lenet5-mnist. KL(dense || pruned) on the
    eval set shows fidelity where 1,000 test digits cannot separate accuracies; the
    "right only" columns count the test digits that one model gets right and layer-wise
    magnitude (the same 50 % in every layer, the fair allocation for Wanda) gets wrong and
    vice versa: a gap smaller than the noise of such paired counts is a tie.
(2b) The same one-shot comparison on MiniLM (zoo:minilm, pretrained), whose FFN inputs carry
    a few outlier features 10-30x the median: the case Wanda was designed for. Metric: mean
    embedding cosine to the dense model through ONNX Runtime.
(3) Sensitivity scan of LeNet-5 (calibration split) and the allocation it gives for 90 %.

Every accuracy is measured on the exported ONNX file in ONNX Runtime, except the scan
(PyTorch, by design: it is a pruning-time heuristic on calibration data).

Run alone: ``.venv/bin/python benchmarks/run.py --only unstructured``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

HAN_TASKS = ("lenet300-mnist", "lenet5-mnist")
ONE_SHOT_TASKS = ("lenet300-mnist", "vit-mnist", "lenet5-mnist")


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _softmax_log(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


class _Eval:
    """Builds a recipe's artifact and scores it in ONNX Runtime against the dense model."""

    def __init__(self, task, work: Path) -> None:
        from edgeshrink.export import export_onnx
        from edgeshrink.measure.artifact import onnx_outputs

        self.task, self.work = task, work
        dense = export_onnx(task.model, task.example_inputs(), work / f"{id(task)}-dense.onnx")
        self.ref = onnx_outputs(dense, task.eval)
        self.dense = task.metric(self.ref, task.eval.targets)

    def __call__(self, name: str, recipe: list) -> dict:
        from edgeshrink.measure.artifact import onnx_outputs
        from edgeshrink.measure.model_stats import weight_sparsity
        from edgeshrink.transforms import TransformContext, apply_recipe

        t0 = time.perf_counter()
        ctx = TransformContext(task=self.task, workdir=self.work, name=name, seed=self.task.seed)
        art = apply_recipe(recipe, ctx)
        secs = time.perf_counter() - t0
        out = onnx_outputs(art.path, self.task.eval)
        lp, lq = _softmax_log(self.ref), _softmax_log(out)
        kl = float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))
        value = self.task.metric(out, self.task.eval.targets)
        right = np.argmax(out, axis=1) == np.asarray(self.task.eval.targets)
        return {"metric": value, "drop": self.dense - value, "kl": kl, "seconds": secs,
                "sparsity": weight_sparsity(art.model), "right": right}


def _load(name: str):
    from edgeshrink.task import load_task
    from edgeshrink.zoo import available

    if name not in available():
        return None
    return load_task(f"zoo:{name}")


def han_level(work: Path, log) -> str:
    from edgeshrink.prune import GradualConfig, IterativeConfig, UnstructuredConfig
    from edgeshrink.train import FinetuneConfig

    recipes = {
        "magnitude one-shot, no retraining": [UnstructuredConfig(0.9)],
        "magnitude + fine-tune 4 ep": [UnstructuredConfig(0.9), FinetuneConfig(epochs=4)],
        "magnitude + fine-tune 4 ep + distill 0.5": [
            UnstructuredConfig(0.9), FinetuneConfig(epochs=4, distill=0.5)],
        "iterative 3 x 2 ep + distill 0.5": [
            IterativeConfig(0.9, steps=3, epochs_per_step=2, distill=0.5)],
        "gradual cubic 0->90 % over 4 ep, 6 ep + distill 0.5": [
            GradualConfig(0.0, 0.9, end_epoch=4.0, epochs=6, distill=0.5)],
        "gradual cubic 0->95 % over 4 ep, 6 ep + distill 0.5": [
            GradualConfig(0.0, 0.95, end_epoch=4.0, epochs=6, distill=0.5)],
    }
    rows = []
    for task_name in HAN_TASKS:
        task = _load(task_name)
        ev = _Eval(task, work)
        for label, recipe in recipes.items():
            r = ev(f"{task_name}-han-{len(rows)}", recipe)
            ok = "yes" if r["drop"] <= 0.5 and r["sparsity"] >= 0.9 - 1e-3 else "no"
            rows.append([task_name, label, f"{100 * r['sparsity']:.1f} %", f"{ev.dense:.2f}",
                         f"{r['metric']:.2f}", f"{r['drop']:+.2f}", ok, f"{r['seconds']:.0f}"])
            log(f"han {task_name} {label}: {r['metric']:.2f}")
    return _table(["task", "method", "sparsity", "dense", "pruned (ORT)", "drop",
                   "within 0.5 at >= 90 %", "s"], rows)


def one_shot(work: Path, log) -> str:
    from edgeshrink.prune import NMConfig, SparseGPTConfig, UnstructuredConfig, WandaConfig

    recipes = {
        "random": [UnstructuredConfig(0.5, scope="layer", criterion="random")],
        "magnitude (layer)": [UnstructuredConfig(0.5, scope="layer")],
        "magnitude (global)": [UnstructuredConfig(0.5)],
        "Wanda": [WandaConfig(0.5)],
        "Wanda (per-layer group)": [WandaConfig(0.5, group="layer")],
        "Wanda + bias correction": [WandaConfig(0.5, bias_correction=True)],
        "SparseGPT-like": [SparseGPTConfig(0.5)],
        "2:4 magnitude": [NMConfig()],
        "2:4 Wanda": [WandaConfig(pattern="2:4")],
        "2:4 SparseGPT-like": [SparseGPTConfig(pattern="2:4")],
    }
    rows, notes = [], []
    for task_name in ONE_SHOT_TASKS:
        task = _load(task_name)
        if task is None:
            notes.append(f"zoo:{task_name} is not registered in this tree: skipped.")
            continue
        ev = _Eval(task, work)
        results = {label: ev(f"{task_name}-os-{i}", r) for i, (label, r) in
                   enumerate(recipes.items())}
        mag = results["magnitude (layer)"]
        rows.append([task_name, "dense", "0.0 %", f"{ev.dense:.2f}", "", "0", "", "", ""])
        for label, r in results.items():
            better, wins = "", ["", ""]
            if label.startswith(("Wanda", "SparseGPT")):
                better = "yes" if r["metric"] > mag["metric"] else "no"
                better += " / " + ("yes" if r["kl"] < mag["kl"] else "no")
                wins = [str(int(np.sum(r["right"] & ~mag["right"]))),
                        str(int(np.sum(~r["right"] & mag["right"])))]
            rows.append([task_name, label, f"{100 * r['sparsity']:.1f} %", f"{r['metric']:.2f}",
                         f"{r['drop']:+.2f}", f"{r['kl']:.4f}", better, *wins])
        log(f"one-shot {task_name} done")
    table = _table(["task", "method (50 %, no retraining)", "sparsity", "accuracy (ORT)",
                    "drop", "KL(dense||pruned)", "beats layer-wise magnitude (accuracy / KL)",
                    "right only", "magnitude right only"], rows)
    return table + "".join(f"\n{n}\n" for n in notes)


def one_shot_minilm(work: Path, log) -> str:
    from edgeshrink.measure.artifact import onnx_outputs
    from edgeshrink.measure.model_stats import weight_sparsity
    from edgeshrink.prune import SparseGPTConfig, UnstructuredConfig, WandaConfig
    from edgeshrink.transforms import TransformContext, apply_recipe

    task = _load("minilm")
    if task is None:
        return "zoo:minilm is not registered in this tree: skipped.\n"
    calib = {"samples": 128, "batch_size": 16}  # 128 sequences x 128 tokens
    recipes = {
        "magnitude (layer)": [UnstructuredConfig(0.5, scope="layer")],
        "magnitude (global)": [UnstructuredConfig(0.5)],
        "Wanda": [WandaConfig(0.5, **calib)],
        "SparseGPT-like": [SparseGPTConfig(0.5, **calib)],
    }
    rows = []
    for i, (label, recipe) in enumerate(recipes.items()):
        t0 = time.perf_counter()
        ctx = TransformContext(task=task, workdir=work, name=f"minilm-os-{i}", seed=task.seed)
        art = apply_recipe(recipe, ctx)
        secs = time.perf_counter() - t0
        out = onnx_outputs(art.path, task.eval, batch_size=32)
        cos = task.metric(out, task.eval.targets)
        rows.append(["minilm", label, f"{100 * weight_sparsity(art.model):.1f} %", f"{cos:.4f}",
                     f"{secs:.0f}"])  # fmt: skip
        log(f"one-shot minilm {label} done")
    return _table(["task", "method (50 %, no retraining)", "sparsity (Linear weights)",
                   f"{task.metric.name} to dense (ORT)", "prune s"], rows)  # fmt: skip


def sensitivity(work: Path, log) -> str:
    import torch

    from edgeshrink.prune import SensitivityConfig, UnstructuredConfig
    from edgeshrink.prune.sensitivity import allocate, layer_sizes, scan

    task = _load("lenet5-mnist")
    table = scan(task.model, task)
    s = table["sparsity"]
    alloc = allocate(table, layer_sizes(task.model), 0.9)
    rows = [[name, f"{layer_sizes(task.model)[name]:,}"] + [f"{v:.1f}" for v in values]
            + [f"{100 * alloc[name]:.1f} %"] for name, values in s["layers"].items()]
    scan_md = _table(["layer", "weights"] + [f"{100 * lv:.0f} %" for lv in s["levels"]]
                     + ["allocation for 90 %"], rows)
    ev = _Eval(task, work)
    torch.manual_seed(0)
    uni = ev("l5-sens-global", [UnstructuredConfig(0.9)])
    lay = ev("l5-sens-layer", [UnstructuredConfig(0.9, scope="layer")])
    sen = ev("l5-sens-alloc", [SensitivityConfig(0.9)])
    log("sensitivity done")
    cmp_md = _table(["90 % one-shot, no retraining", "accuracy (ORT)", "drop"], [
        ["magnitude, uniform per layer", f"{lay['metric']:.2f}", f"{lay['drop']:+.2f}"],
        ["magnitude, global threshold", f"{uni['metric']:.2f}", f"{uni['drop']:+.2f}"],
        ["magnitude, sensitivity allocation", f"{sen['metric']:.2f}", f"{sen['drop']:+.2f}"],
    ])
    return (f"Accuracy (%) on the 500-digit calibration split with one layer pruned by "
            f"magnitude to each level; dense {s['layers'][next(iter(s['layers']))][0]:.1f}.\n\n"
            + scan_md + "\n" + cmp_md)


def run(ctx) -> str:
    import torch

    torch.set_num_threads(2)
    work = Path(ctx.work) if ctx is not None else Path(tempfile.mkdtemp(prefix="bench-unst-"))
    work.mkdir(parents=True, exist_ok=True)
    log = ctx.log if ctx is not None else print
    parts = [
        "### Han et al. level: >= 90 % unstructured sparsity with retraining\n",
        "Accuracy on the 1,000-digit test split through ONNX Runtime (1 digit = 0.1 point).\n",
        han_level(work, log),
        "\n### 50 % one-shot sparsity, no retraining (calibration: the 500-sample calibration split)\n",
        one_shot(work, log),
        "\n### 50 % one-shot sparsity on MiniLM (pretrained; outlier features)\n",
        one_shot_minilm(work, log),
        "\n### Sensitivity scan: LeNet-5 (zoo:lenet5-mnist)\n",
        sensitivity(work, log),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(run(None))
