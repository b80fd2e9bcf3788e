"""A generated corpus of bad inputs for every command (issue #15's fuzz suite).

Each :class:`Case` is an argv (``{d}`` = the sandbox folder) plus the files it needs.
Every case must end in exit code 2 with one ``error:`` line on stderr, nothing written,
no input modified, and no pickle executed: every payload creates ``PWNED`` in the current
folder (the sandbox, where the cases run) if it is ever executed.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeshrink.zoo.cache import TRAINING  # part of every zoo cache file name

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "unit" / "bench"))
sys.path.insert(0, str(HERE.parent / "unit" / "report"))

Content = bytes | str | Callable[[Path], None]


@dataclass
class Case:
    id: str
    argv: list[str]
    files: dict[str, Content] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class Payload:
    """A pickle that, if ever unpickled, creates the marker file PWNED (in the sandbox)."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


MARKER = "PWNED"


def payload(_d: Path | None = None) -> bytes:
    return pickle.dumps(Payload())


# ------------------------------------------------------------------ building blocks


def _onnx_bytes(**kw) -> bytes:
    import tempfile

    from bench_onnx_models import make_mlp

    with tempfile.TemporaryDirectory() as tmp:
        return make_mlp(Path(tmp) / "m.onnx", **kw).read_bytes()


def _model(name: str, build: Callable[[], object]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import onnx

        model = build()
        path.write_bytes(model.SerializeToString() if isinstance(model, onnx.ModelProto)
                         else model)

    write.__name__ = name
    return write


def _graph(inputs, nodes, outputs, inits=(), opset=17):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _odd_models() -> dict[str, Callable[[], object]]:
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT

    def vi(name, shape, t=f):
        return helper.make_tensor_value_info(name, t, shape)

    relu = [helper.make_node("Relu", ["X"], ["Y"])]
    return {
        "unknown-op": lambda: _graph([vi("X", [1, 4])], [helper.make_node(
            "NoSuchOp", ["X"], ["Y"])], [vi("Y", [1, 4])]),
        "huge-fixed-dims": lambda: _graph([vi("X", [1 << 20, 1 << 20])], relu,
                                          [vi("Y", [1 << 20, 1 << 20])]),
        "dynamic-dims": lambda: _graph([vi("X", ["N", "seq", "feat"])], relu,
                                       [vi("Y", ["N", "seq", "feat"])]),
        "string-input": lambda: _graph([vi("X", [1, 2], TensorProto.STRING)], [
            helper.make_node("Identity", ["X"], ["Y"])], [vi("Y", [1, 2], TensorProto.STRING)]),
        "dangling-input": lambda: _graph([vi("X", [1, 4])], [helper.make_node(
            "Add", ["X", "Missing"], ["Y"])], [vi("Y", [1, 4])]),
        "future-opset": lambda: _graph([vi("X", [1, 4])], relu, [vi("Y", [1, 4])], opset=99),
        "no-graph": lambda: b"\x08\x09",  # ir_version only
    }


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "bad-wire-type": lambda b: b"\xff" + b[1:],
    "huge-length": lambda b: b[:1] + b"\xff\xff\xff\xff\x0f" + b[6:],
    "garbage-tail": lambda b: b[: len(b) * 6 // 10] + random.Random(2).randbytes(300),
    "xor": lambda b: bytes(x ^ 0x55 for x in b),
    "reversed": lambda b: b[::-1],
    "doubled-header": lambda b: b[:40] + b,
}


def _corrupt_onnx(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(CORRUPTIONS[name](_onnx_bytes()))
    return write


def _truncated_onnx(fraction: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = _onnx_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return write


def _npz(**arrays) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.write_bytes(buf.getvalue())
    return write


def _payload_npz(path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buf.getvalue())


def _payload_file(path: Path) -> None:
    path.write_bytes(payload(path.parent))


def _sample_run(mutate: Callable[[dict], object] | None = None,
                raw: bytes | None = None) -> Callable[[Path], None]:
    """A run folder (the report tests' sample study) with results.json mutated or replaced."""
    def write(folder: Path) -> None:
        from sample_run import write_sample_run

        folder.mkdir(parents=True, exist_ok=True)
        write_sample_run(folder)
        if raw is not None:
            (folder / "results.json").write_bytes(raw)
        elif mutate is not None:
            data = json.loads((folder / "results.json").read_text())
            out = mutate(data)
            (folder / "results.json").write_text(json.dumps(data if out is None else out))
    return write


# ------------------------------------------------------------------ hostile text


BILLION_LAUGHS = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def hostile_yaml(d: Path | None = None) -> dict[str, bytes]:
    """Name -> content of YAML files no command may accept."""
    marker = MARKER
    return {
        "empty": b"",
        "latin1": "x:\n  - {kind: fp16}  # caf\xe9\n".encode("latin-1"),
        "utf16": "x:\n  - {kind: fp16}\n".encode("utf-16"),
        "binary": bytes(range(256)) * 4,
        "pickle": payload(d),
        "billion-laughs": BILLION_LAUGHS.encode(),
        "python-apply": f"x: !!python/object/apply:os.system ['touch {marker}']\n".encode(),
        "python-name": b"x: !!python/name:os.system\n",
        "python-new": f"x: !!python/object/new:builtins.open ['{marker}', 'w']\n".encode(),
        "deep": ("x: " + "[" * 600 + "]" * 600 + "\n").encode(),
        "scalar": b"just text\n",
        "tabs": b"x:\n\t- {kind: fp16}\n",
        "unclosed": b"x: [1, 2\n",
        "duplicate-anchor-alias": b"x: &a {kind: fp16}\ny: *a\n",
        "huge": b"# " + b"x" * (17 * 2**20) + b"\n",
    }


def plan_bodies() -> dict[str, str]:
    """Name -> plan YAML that parses but is wrong."""
    return {
        "list-top": "- {kind: fp16}\n",
        "candidate-not-list": "c: {kind: fp16}\n",
        "step-not-mapping": "c: [fp16]\n",
        "unknown-kind": "c: [{kind: nope}]\n",
        "no-kind": "c: [{sparsity: 0.5}]\n",
        "unknown-field": "c: [{kind: unstructured, sparsity: 0.5, colour: red}]\n",
        "sparsity-nan": "c: [{kind: unstructured, sparsity: .nan}]\n",
        "sparsity-inf": "c: [{kind: unstructured, sparsity: .inf}]\n",
        "sparsity-negative": "c: [{kind: unstructured, sparsity: -0.5}]\n",
        "sparsity-one": "c: [{kind: unstructured, sparsity: 1.0}]\n",
        "sparsity-text": "c: [{kind: unstructured, sparsity: lots}]\n",
        "sparsity-list": "c: [{kind: unstructured, sparsity: [0.5]}]\n",
        "bits-text": "c: [{kind: lowbit, bits: abc}]\n",
        "bits-huge": "c: [{kind: lowbit, bits: 100000000000000000000000000000}]\n",
        "epochs-negative": "c: [{kind: finetune, epochs: -3}]\n",
        "epochs-float": "c: [{kind: finetune, epochs: 2.5}]\n",
        "calibrator-unknown": "c: [{kind: int8_static, calibrator: guess}]\n",
        "artifact-not-last": "c: [{kind: fp16}, {kind: unstructured, sparsity: 0.5}]\n",
    }


def profile_bodies() -> dict[str, str]:
    """Name -> device profile YAML that parses but is wrong."""
    base = Path(__file__).resolve().parents[2] / "src/edgeshrink/devices/profiles"
    import yaml

    good = yaml.safe_load((base / "raspberry-pi-4.yaml").read_text())

    def with_(**changes) -> str:
        data = {**good, **changes}
        for k, v in list(data.items()):
            if v is _DROP:
                del data[k]
        return yaml.safe_dump(data)

    return {
        "missing-fields": "name: x\n",
        "list": "- name: x\n",
        "kind-toaster": with_(kind="toaster"),
        "ram-text": with_(ram_mb="lots"),
        "ram-nan": with_(ram_mb=float("nan")),
        "ram-inf": with_(ram_mb=float("inf")),
        "ram-negative": with_(ram_mb=-4096),
        "peak-list": with_(peak_gmacs=[1, 2]),
        "peak-no-fp32": with_(peak_gmacs={"int8": 10.0}),
        "peak-text": with_(peak_gmacs={"fp32": "fast"}),
        "accelerates-list": with_(accelerates=["int8"]),
        "accelerates-unknown": with_(accelerates={"int3": True}),
        "energy-number": with_(energy=5),
        "energy-text": with_(energy={"pj_per_mac": "cheap"}),
        "efficiency-text": with_(efficiency="high"),
        "overhead-list": with_(overhead_us=[1, 2]),
        "sources-empty": with_(sources=[]),
        "unknown-field": with_(colour="red"),
        "threads-zero": with_(threads=0),
        "name-list": with_(name=["a", "b"]),
        "priority-unknown": with_(default_priority="vibes"),
        "usable-fraction-text": with_(usable_ram_fraction="most"),
        "weights-in-cloud": with_(weights_in="cloud"),
        "no-energy": with_(energy=_DROP),
    }


_DROP = object()


def results_mutations() -> dict[str, Callable[[Path], None]]:
    """Name -> a run folder whose results.json is wrong in one way."""
    def cand(i, **kw):
        def mutate(data):
            data["candidates"][i].update(kw)
        return mutate

    return {
        "empty": _sample_run(raw=b""),
        "not-json": _sample_run(raw=b"{results"),
        "latin1": _sample_run(raw='{"task": "caf\xe9"}'.encode("latin-1")),
        "pickle": lambda folder: (_sample_run()(folder),
                                  _payload_file(folder / "results.json")),
        "array": _sample_run(lambda d: [d]),
        "number": _sample_run(lambda d: 42),
        "no-task": _sample_run(lambda d: d.pop("task")),
        "candidates-dict": _sample_run(lambda d: d.update(candidates={"a": 1})),
        "candidate-string": _sample_run(lambda d: d.update(candidates=["x"])),
        "baseline-string": _sample_run(lambda d: d.update(baseline="x")),
        "value-text": _sample_run(lambda d: d["candidates"][0]["metric"].update(value="abc")),
        "value-missing": _sample_run(lambda d: d["candidates"][0]["metric"].pop("value")),
        "p50-list": _sample_run(lambda d: d["candidates"][0]["latency_ms"].update(p50=[1])),
        "p50-missing": _sample_run(lambda d: d["candidates"][0]["latency_ms"].pop("p50")),
        "size-text": _sample_run(cand(0, size_bytes="big")),
        "size-float": _sample_run(cand(0, size_bytes=1.5)),
        "params-null": _sample_run(cand(1, params=None)),
        "name-number": _sample_run(cand(1, name=7)),
        "recipe-string": _sample_run(cand(2, recipe="fp16")),
        "notes-list": _sample_run(cand(2, notes=[1])),
        "metric-list": _sample_run(cand(3, metric=[1])),
        "latency-null": _sample_run(cand(3, latency_ms=None)),
        "sparsity-bool": _sample_run(cand(0, sparsity=True)),
        "artifact-number": _sample_run(cand(0, artifact=5)),
        "deep": _sample_run(raw=b"[" * 100000 + b"]" * 100000),
    }


def bench_json_bodies(d: Path | None = None) -> dict[str, bytes]:
    from edgeshrink.bench.runner import SCHEMA

    return {
        "empty": b"",
        "not-json": b"{bench",
        "latin1": '{"x": "caf\xe9"}'.encode("latin-1"),
        "pickle": payload(d),
        "array": b"[1, 2]",
        "no-schema": b'{"latency_ms": {"p50": 1}}',
        "schema-only": json.dumps({"schema": SCHEMA}).encode(),
        "latency-text": json.dumps({"schema": SCHEMA, "options": {"threads": 1},
                                    "model": {"sha256": "0" * 64, "name": "m.onnx"},
                                    "latency_ms": "fast"}).encode(),
    }


# ------------------------------------------------------------------ the corpus


def build(d: Path | None = None) -> list[Case]:
    """Every case; ``d`` is only used for contents that name the sandbox (payloads)."""
    cases: list[Case] = []
    add = cases.append
    good_onnx = _model("good", lambda: _onnx_bytes())

    # --- YAML files through every option that reads one
    for name, body in hostile_yaml(d).items():
        add(Case(f"study-plan-{name}", ["study", "--plan", "{d}/in.yaml", "--out", "{d}/o"],
                 {"in.yaml": body}))
        add(Case(f"study-device-{name}", ["study", "--device", "{d}/in.yaml", "--out", "{d}/o"],
                 {"in.yaml": body}))
        add(Case(f"prune-recipe-{name}", ["prune", "--recipe", "{d}/in.yaml", "--out",
                                          "{d}/o.onnx"], {"in.yaml": body}))
        add(Case(f"quantize-recipe-{name}", ["quantize", "--recipe", "{d}/in.yaml", "--out",
                                             "{d}/o.onnx"], {"in.yaml": body}))
        add(Case(f"recommend-device-{name}", ["recommend", "{d}/run", "--device",
                                              "{d}/in.yaml"],
                 {"in.yaml": body, "run": _sample_run()}))
        add(Case(f"devices-env-{name}", ["devices"], {"profiles/bad.yaml": body},
                 {"EDGESHRINK_DEVICES": "{d}/profiles"}))
    for name, body in plan_bodies().items():
        add(Case(f"study-plan-{name}", ["study", "--plan", "{d}/p.yaml", "--out", "{d}/o"],
                 {"p.yaml": body}))
        if body.startswith("c: "):  # the candidate's steps, as a recipe file
            add(Case(f"prune-recipe-{name}", ["prune", "--recipe", "{d}/r.yaml", "--out",
                                              "{d}/o.onnx"], {"r.yaml": body[3:]}))
    for name, body in profile_bodies().items():
        add(Case(f"study-profile-{name}", ["study", "--device", "{d}/dev.yaml", "--out",
                                           "{d}/o"], {"dev.yaml": body}))
        add(Case(f"recommend-profile-{name}", ["recommend", "{d}/run", "--device",
                                               "{d}/dev.yaml"],
                 {"dev.yaml": body, "run": _sample_run()}))
        add(Case(f"devices-profile-{name}", ["devices"], {"profiles/dev.yaml": body},
                 {"EDGESHRINK_DEVICES": "{d}/profiles"}))

    # --- numbers and names on the command line
    for flag, values in {
        "--max-size": ["-5MB", "5XB", "nanMB", "", "0", "1e3KB", "inf", "5 MB MB"],
        "--max-latency": ["-1ms", "nan", "5 parsecs", "0ms", "infms"],
        "--max-drop": ["nan", "inf", "-inf", "-1", "abc", "1e999"],
        "--max-energy": ["-2mJ", "nanmJ", "0", "2 kWh"],
        "--threads": ["0", "-1", "a", "", "1,,x", "1.5"],
        "--finetune-epochs": ["-1", "x"],
        "--priority": ["fastest", "", "SIZE ", "None"],
        "--device": ["no-such-device", "", "../../etc/passwd", "{d}/missing.yaml"],
        "--plan": ["no-such-plan", "{d}/missing.yaml", ""],
        "--task": ["zoo:nope", "", "nonsense", "{d}/missing.py:make", "{d}:make",
                   "zoo:", "{d}/payload.pt"],
    }.items():
        for i, value in enumerate(values):
            add(Case(f"study{flag}-{i}", ["study", flag, value, "--out", "{d}/o"],
                     {"payload.pt": _payload_file}))
    for flag, values in {"--max-drop": ["nan", "-1"], "--priority": ["fastest"],
                         "--max-size": ["-1KB"], "--device": ["nope"]}.items():
        for i, value in enumerate(values):
            add(Case(f"recommend{flag}-{i}", ["recommend", "{d}/run", "--device", "rpi4", flag,
                                              value], {"run": _sample_run()}))
    prune = ["prune", "--task", "zoo:lenet5-digits", "--out", "{d}/o.onnx"]
    for i, extra in enumerate([
        [], ["--method", "nope"], ["--method", "unstructured", "--sparsity", "1"],
        ["--method", "unstructured", "--sparsity", "-0.1"],
        ["--method", "unstructured", "--sparsity", "nan"],
        ["--method", "unstructured", "--sparsity", "inf"],
        ["--method", "unstructured", "--distill", "nan", "--finetune-epochs", "1"],
        ["--method", "unstructured", "--distill", "0.5"],
        ["--method", "unstructured", "--distill", "2", "--finetune-epochs", "1"],
        ["--method", "unstructured", "--set", "sparsity"],
        ["--method", "unstructured", "--set", "=0.5"],
        ["--method", "unstructured", "--set", "colour=red"],
        ["--method", "unstructured", "--set", "sparsity=abc"],
        ["--method", "unstructured", "--set", "sparsity=.nan"],
        ["--method", "unstructured", "--set", "sparsity=[0.5"],
        ["--method", "unstructured", "--set", "sparsity=!!python/name:os.system"],
        ["--method", "nm", "--set", "pattern=5:4"],
        ["--method", "unstructured", "--finetune-epochs", "-2"],
        ["--method", "fp16"], ["--recipe", "{d}/missing.yaml"],
        ["--recipe", "{d}", "--method", "unstructured"],
    ]):
        add(Case(f"prune-options-{i}", prune + extra))
    add(Case("prune-out-not-onnx", ["prune", "--method", "unstructured", "--out", "{d}/o.txt"]))
    quantize = ["quantize", "--task", "zoo:lenet5-digits", "--out", "{d}/o.onnx"]
    for i, extra in enumerate([
        [], ["--method", "nope"], ["--method", "lowbit", "--set", "bits=abc"],
        ["--method", "lowbit", "--set", "bits=0"], ["--method", "lowbit", "--set", "bits=99"],
        ["--method", "int8_static", "--set", "calibrator=guess"],
        ["--method", "int8_static", "--set", "calibrator=.nan"],
        ["--method", "int4_weight_only", "--set", "group_size=-3"],
        ["--method", "unstructured"],
        ["--method", "fp16", "--set", "nothing=1"],
    ]):
        add(Case(f"quantize-options-{i}", quantize + extra))
    add(Case("quantize-out-not-onnx", ["quantize", "--method", "fp16", "--out", "{d}/o.txt"]))
    add(Case("quantize-recipe-pruning-only", ["quantize", "--recipe", "{d}/r.yaml", "--out",
                                              "{d}/o.onnx"],
             {"r.yaml": "- {kind: unstructured, sparsity: 0.5}\n"}))

    # --- task files
    for name, source in {
        "syntax": "def make(:\n", "import": "import no_such_module_xyz\n",
        "raises": "def make():\n    raise RuntimeError('boom')\n",
        "arguments": "def make(x):\n    pass\n", "not-a-task": "def make():\n    return 1\n",
        "exits": "import sys\ndef make():\n    sys.exit(0)\n", "no-function": "x = 1\n",
        "latin1": "# caf\xe9\ndef make():\n    pass\n",
    }.items():
        body = source.encode("latin-1") if name == "latin1" else source
        for command in ("study", "prune", "quantize"):
            extra = ["--method", "fp16"] if command == "quantize" else (
                ["--method", "unstructured"] if command == "prune" else [])
            out = "{d}/o" if command == "study" else "{d}/o.onnx"
            add(Case(f"{command}-taskfile-{name}", [command, "--task", "{d}/t.py:make",
                                                     "--out", out, *extra], {"t.py": body}))

    # --- the zoo cache
    for name, content in {"pickle": _payload_file, "empty": b"", "text": b"weights\n",
                          "truncated-zip": b"PK\x03\x04" + b"\0" * 40}.items():
        add(Case(f"study-zoo-cache-{name}", ["study", "--task", "zoo:lenet5-digits", "--out",
                                             "{d}/o"],
                 {f"cache/zoo/lenet5-digits-v1-s0-{TRAINING}.pt": content}, {"EDGESHRINK_CACHE": "{d}/cache"}))

    # --- the output folder
    add(Case("study-out-file", ["study", "--out", "{d}/f"], {"f": b"keep"}))
    add(Case("study-out-foreign", ["study", "--out", "{d}/p"], {"p/artifacts/fig.txt": b"x"}))
    add(Case("study-resume-foreign", ["study", "--out", "{d}/p", "--resume"],
             {"p/notes.md": b"x"}))
    add(Case("study-force-over-results", ["study", "--out", "{d}/p", "--force"],
             {"p/results.json": b"{}"}))
    add(Case("study-damaged-manifest", ["study", "--out", "{d}/p", "--resume"],
             {"p/edgeshrink-run.json": b"{not json"}))
    add(Case("study-existing-run", ["study", "--out", "{d}/p"],
             {"p/edgeshrink-run.json": json.dumps({"task": "zoo:x", "files": {}})}))

    # --- bench files
    for name, body in bench_json_bodies(d).items():
        add(Case(f"study-bench-json-{name}", ["study", "--bench-json", "{d}/b.json", "--out",
                                              "{d}/o"], {"b.json": body}))
        add(Case(f"recommend-bench-json-{name}", ["recommend", "{d}/run", "--device", "rpi4",
                                                  "--bench-json", "{d}/b.json"],
                 {"b.json": body, "run": _sample_run()}))

    # --- ONNX files through bench
    onnx_files: dict[str, Content] = {
        "empty": b"", "text": b"ir_version: 9\n", "pickle": _payload_file,
        "zip": b"PK\x05\x06" + b"\0" * 18, "random": random.Random(1).randbytes(5000),
        **{f"truncated-{int(f * 100)}": _truncated_onnx(f) for f in (0.1, 0.5, 0.9, 0.99)},
        **{f"corrupt-{name}": _corrupt_onnx(name) for name in CORRUPTIONS},
        **{name: _model(name, build) for name, build in _odd_models().items()},
    }
    for name, content in onnx_files.items():
        add(Case(f"bench-onnx-{name}", ["bench", "{d}/m.onnx", "--runs", "3", "--warmup", "0"],
                 {"m.onnx": content}))
    add(Case("bench-missing", ["bench", "{d}/none.onnx"]))
    add(Case("bench-folder", ["bench", "{d}"]))
    add(Case("bench-none", ["bench"]))
    for i, extra in enumerate([
        ["--threads", "-1"], ["--runs", "0"], ["--runs", "-5"], ["--warmup", "-1"],
        ["--budget", "nan"], ["--budget", "-1"], ["--budget", "inf"], ["--batch", "0"],
        ["--dim", "bad"], ["--dim", "x=0"], ["--dim", "x=abc"], ["--dim", "unknown=3"],
        ["--provider", "NoSuchProvider"], ["--inputs", "{d}/none.npz"],
        ["--inputs", "{d}/bad.npz"], ["--inputs", "{d}/payload.npz"],
        ["--inputs", "{d}/shape.npz"], ["--inputs", "{d}/dtype.npz"],
        ["--inputs", "{d}/extra.npz"], ["--out", "{d}"], ["--compare"],
        ["{d}/m.onnx"], ["--batch", "999999999999"], ["--runs", "abc"],
    ]):
        add(Case(f"bench-options-{i}", ["bench", "{d}/m.onnx", "--runs", "3", *extra],
                 {"m.onnx": good_onnx, "bad.npz": b"PK not a zip", "payload.npz": _payload_npz,
                  "shape.npz": _npz(X=np.zeros((1, 15), np.float32)),
                  "dtype.npz": _npz(X=np.zeros((1, 16), np.float64)),
                  "extra.npz": _npz(X=np.zeros((1, 16), np.float32),
                                    Z=np.zeros(1, np.float32))}))
    add(Case("bench-write-pyz-folder", ["bench", "--write-pyz", "{d}"]))

    # --- recommend / report on broken run folders
    for name, build_run in results_mutations().items():
        add(Case(f"recommend-results-{name}", ["recommend", "{d}/run", "--device", "rpi4"],
                 {"run": build_run}))
        add(Case(f"report-results-{name}", ["report", "{d}/run", "--quiet"],
                 {"run": build_run}))
    for command in (["recommend", "--device", "rpi4"], ["report"]):
        add(Case(f"{command[0]}-missing-run", [command[0], "{d}/none", *command[1:]]))
        add(Case(f"{command[0]}-run-is-file", [command[0], "{d}/f", *command[1:]],
                 {"f": b"x"}))
    add(Case("recommend-missing-artifact", ["recommend", "{d}/run", "--device", "rpi4",
                                            "--max-drop", "5"],
             {"run": lambda f: (_sample_run()(f), [p.unlink() for p in
                                                   (f / "artifacts").iterdir()])}))

    # --- usage errors of every command
    for argv in (["nocommand"], ["study", "--bogus"], ["prune", "--bogus"],
                 ["quantize", "--bogus"], ["bench", "--bogus"], ["recommend"],
                 ["report"], ["devices", "--bogus"], ["tasks", "--bogus"], ["tasks", "extra"],
                 ["devices", "extra"], ["--bogus"], ["recommend", "{d}"]):
        add(Case("usage-" + "-".join(a.strip("-{}") for a in argv), argv))
    return cases
