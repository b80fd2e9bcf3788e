"""Files a user hands over that are wrong in some way (issue #15): one sentence and exit 2,
never a traceback; output files that honour the umask; names escaped in the hand-over."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeshrink.cli import main
from edgeshrink.zoo.cache import TRAINING

sys.path.insert(0, str(Path(__file__).parent / "bench"))
sys.path.insert(0, str(Path(__file__).parent / "report"))
from bench_onnx_models import make_mlp  # noqa: E402
from sample_run import write_sample_run  # noqa: E402

LATIN1 = "p:\n  - {kind: fp16}  # caf\xe9\n".encode("latin-1")


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return info.value.code, err


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("EDGESHRINK_DEBUG", raising=False)


@pytest.mark.parametrize("argv", [
    ["study", "--plan", "{f}", "--out", "{tmp}/run"],
    ["study", "--device", "{f}", "--out", "{tmp}/run"],
    ["prune", "--recipe", "{f}", "--out", "{tmp}/x.onnx"],
    ["quantize", "--recipe", "{f}", "--out", "{tmp}/x.onnx"],
    ["recommend", "{tmp}/run", "--device", "{f}"],
])
def test_non_utf8_files_are_refused(argv, tmp_path, capsys):
    f = tmp_path / "latin1.yaml"
    f.write_bytes(LATIN1)
    if argv[0] == "recommend":
        write_sample_run(tmp_path / "run")
    code, err = run_cli([a.format(f=f, tmp=tmp_path) for a in argv], capsys)
    assert code == 2 and f"{f} is not UTF-8 text (byte 26 is 0xe9)" in err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "run" / "recommended").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("- {kind: [", "is not valid YAML"),
    ("- fp16\n", "must be a YAML list of transform configs"),
    ("- &a {kind: fp16}\n- *a\n", "YAML aliases (*name) are not allowed"),
    ("- !!python/object/apply:os.system ['touch {marker}']\n", "is not valid YAML"),
])
@pytest.mark.parametrize("command", ["prune", "quantize"])
def test_malformed_recipes_are_refused(command, text, message, tmp_path, capsys):
    marker = tmp_path / "marker"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text.replace("{marker}", str(marker)))
    code, err = run_cli([command, "--recipe", str(recipe), "--out", str(tmp_path / "x.onnx")],
                        capsys)
    assert code == 2 and message in err and str(recipe) in err
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_a_zoo_cache_file_that_is_not_weights_only_is_refused_unexecuted(tmp_path, capsys,
                                                                          monkeypatch):
    marker = tmp_path / "marker"
    cache = tmp_path / "cache"
    (cache / "zoo").mkdir(parents=True)
    payload = cache / "zoo" / f"lenet5-digits-v1-s0-{TRAINING}.pt"
    payload.write_bytes(pickle.dumps(Payload(marker)))
    monkeypatch.setenv("EDGESHRINK_CACHE", str(cache))
    code, err = run_cli(["study", "--task", "zoo:lenet5-digits", "--out", str(tmp_path / "r")],
                        capsys)
    assert code == 2 and f"zoo cache file {payload} is not a weights-only checkpoint" in err
    assert "delete it" in err
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_bench_out_naming_a_folder_is_refused_before_measuring(tmp_path, capsys):
    model = make_mlp(tmp_path / "m.onnx")
    folder = tmp_path / "reports"
    folder.mkdir()
    code, err = run_cli(["bench", str(model), "--runs", "5", "--out", str(folder)], capsys)
    assert code == 2 and "is a folder; give the JSON file to write" in err
    assert list(folder.iterdir()) == []


def test_portable_bench_without_onnxruntime_says_how_to_install(tmp_path):
    model = make_mlp(tmp_path / "m.onnx")
    code = ("import sys; sys.modules['onnxruntime'] = None\n"  # import fails as if absent
            "from edgeshrink.bench.cli import main\n"
            f"sys.exit(main([{str(model)!r}, '--runs', '5']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [str(Path(__file__).parents[2] / "src"),
                                 os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 2, result.stderr
    assert "onnxruntime cannot be imported" in result.stderr and "pip install onnxruntime" in \
        result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_honour_the_umask(umask, tmp_path, capsys):
    from edgeshrink.advisor import Constraints, advise_run

    model = make_mlp(tmp_path / "m.onnx")
    old = os.umask(umask)
    try:
        main(["bench", str(model), "--runs", "5", "--warmup", "1", "--out",
              str(tmp_path / "b.json")])
        main(["bench", "--write-pyz", str(tmp_path / "bench.pyz")])
        write_sample_run(tmp_path / "run")
        advise_run(tmp_path / "run", "rpi4", Constraints(max_drop=5.0))
    finally:
        os.umask(old)
    capsys.readouterr()

    def mode(p):
        return stat.S_IMODE((tmp_path / p).stat().st_mode)

    assert mode("b.json") == 0o666 & ~umask
    assert mode("bench.pyz") == 0o777 & ~umask
    assert mode("run/recommended") == 0o777 & ~umask
    assert mode("run/recommended/README.md") == 0o666 & ~umask


def test_recommended_readme_escapes_markdown_in_names(tmp_path):
    from edgeshrink.advisor import copy_recommended
    from edgeshrink.results import load_run

    run = write_sample_run(tmp_path)
    evil = run.candidates[-1]
    assert evil.name == "<script>alert(1)</script>"
    evil.name = "**bold** <script>alert(1)</script> [x](http://e)"
    rec = {"candidate": evil.name, "device": "rpi4", "priority": "size",
           "reasons": [f"{evil.name} is the smallest candidate with a_b_c."]}
    copy_recommended(tmp_path, run, rec)
    readme = (tmp_path / "recommended" / "README.md").read_text()
    escaped = r"\*\*bold\*\* \<script\>alert(1)\</script\> \[x\](http://e)"
    assert readme.splitlines()[0] == f"# {escaped} for raspberry-pi-4"
    assert f"- {escaped} is the smallest candidate with a\\_b\\_c." in readme
    assert "<script>" not in readme and "**bold**" not in readme
    assert load_run(tmp_path).candidates[-1].name == "<script>alert(1)</script>"  # untouched
