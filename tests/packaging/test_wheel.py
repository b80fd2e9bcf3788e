"""The wheel ``pip install edgeshrink`` gets: built from this tree, installed on its own
(``--no-deps``) into an empty folder, it runs and carries the device profiles and the task
template; its metadata gives torch as a range and the optional parts as extras."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from importlib.metadata import version

    out = tmp_path_factory.mktemp("wheel")
    # pyproject's SPDX `license` needs setuptools >= 77; an older one (a fresh 3.11 venv has
    # 65.5) builds in pip's isolated environment instead, fetching a new setuptools.
    major = int(version("setuptools").split(".")[0])
    isolation = ["--no-build-isolation"] if major >= 77 else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", *isolation,
                    "-q", "-w", str(out)], check=True, timeout=300)
    (path,) = out.glob("edgeshrink-*.whl")
    return path


def test_wheel_metadata_declares_a_torch_range_and_extras(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:")]
    torch_req = next(r for r in requires if r.startswith("torch") and "pruning" not in r)
    assert ">=" in torch_req and "<" in torch_req and "==" not in torch_req
    extras = {line.split(":", 1)[1].strip() for line in meta.splitlines()
              if line.startswith("Provides-Extra:")}
    assert {"zoo", "runtimes", "dev"} <= extras


def test_installed_wheel_runs_with_its_profiles_and_template(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    code = ("import edgeshrink, sys; from pathlib import Path; "
            "from edgeshrink.devices import load_profile; "
            "from importlib.resources import files; "
            "assert Path(edgeshrink.__file__).is_relative_to(sys.argv[1]), edgeshrink.__file__; "
            "load_profile('cortex-m7'); "
            "assert 'make_task' in files('edgeshrink.byo').joinpath('task_template.py').read_text(); "
            "print('ok')")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code, str(site)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    devices = subprocess.run([sys.executable, "-m", "edgeshrink", "devices"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert devices.returncode == 0 and "raspberry-pi-4" in devices.stdout, devices.stderr[-2000:]
