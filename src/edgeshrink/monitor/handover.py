"""What the study leaves for monitoring: a reference sample per candidate, and for the
recommended one its profile (and the uncompressed reference) in ``recommended/``.

The study already runs every candidate's file on the evaluation data; it keeps the
per-sample summaries of those outputs (``artifacts/NAME.monitor.npz``, about 10 bytes a
sample). When a candidate is recommended, its profile is calibrated from that sample and
written as ``recommended/monitor-profile.json``; the baseline file is copied beside it as
``reference.onnx`` (when it is small enough to ship) for the shadow agreement check, and
the README says how to run the monitor.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeshrink.monitor.profile import Calibration, profile_from_sample, reference_sample

__all__ = ["save_reference_sample", "write_monitor_files", "sample_path", "MAX_REFERENCE_BYTES"]

MAX_REFERENCE_BYTES = 20 * 2**20

_README = """
## Monitor it on the device

`monitor-profile.json` is this file's reference profile on the evaluation data ({n}
samples{acc}); its drift thresholds are calibrated for a {fa:.0%} chance of any false
alarm over {horizon:,} clean samples (checks of {window} samples every {step}).
{ref}

```
edgeshrink bench --write-pyz edgeshrink-bench.pyz     # on the host; copy it with this folder
python3 edgeshrink-bench.pyz monitor run {artifact} --profile monitor-profile.json \\
    --state monitor.sqlite --inputs incoming/ --alert-dir alerts/{ref_arg}
```

Alerts are JSON lines on stdout (exit code 3). `edgeshrink report --monitor monitor.sqlite`
turns the state into a page of the time series.
"""


def sample_path(run_dir: Path | str, name: str) -> Path:
    return Path(run_dir) / "artifacts" / f"{name}.monitor.npz"


def save_reference_sample(run_dir: Path | str, name: str, outputs: np.ndarray,
                          targets: np.ndarray) -> Path:
    """Keep the per-sample summaries of candidate ``name``'s evaluation outputs."""
    targets = np.asarray(targets)
    labelled = targets.ndim == 1 and np.issubdtype(targets.dtype, np.integer)
    kind = "classifier" if labelled and np.ndim(outputs) == 2 else "embedding"
    sample = reference_sample(outputs, targets if labelled else None, kind)
    path = sample_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **sample)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _load(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_monitor_files(run_dir: Path | str, name: str, artifact: str, baseline: str | None,
                        baseline_artifact: str | None, dest: Path | str,
                        calibration: Calibration | None = None) -> Path | None:
    """Write ``dest/monitor-profile.json`` (and ``reference.onnx``) for candidate ``name``.

    Returns the profile's path, or None when the study kept no sample for it (a run made
    before monitoring existed).
    """
    run_dir, dest = Path(run_dir), Path(dest)
    sample = _load(sample_path(run_dir, name))
    if sample is None:
        return None
    agreement, ref_file = None, None
    base = _load(sample_path(run_dir, baseline)) if baseline and baseline != name else None
    if base is not None and "cls" in sample and "cls" in base and len(base["cls"]) == len(
            sample["cls"]):
        agreement = float(np.mean(sample["cls"] == base["cls"]))
    if baseline_artifact and baseline != name:
        src = run_dir / baseline_artifact
        if src.suffix == ".onnx" and src.is_file() and src.stat().st_size <= MAX_REFERENCE_BYTES:
            shutil.copy2(src, dest / "reference.onnx")
            ref_file = "reference.onnx"
    meta = {"model": Path(artifact).name, "candidate": name, "reference": ref_file}
    if (run_dir / artifact).is_file():
        from edgeshrink.bench.session import sha256_file

        meta["model_sha256"] = sha256_file(run_dir / artifact)
    prof = profile_from_sample(sample, calibration, agreement=agreement, meta=meta)
    path = prof.save(dest / "monitor-profile.json")
    _append_readme(dest / "README.md", prof, Path(artifact).name, ref_file)
    return path


def _append_readme(readme: Path, prof, artifact: str, ref_file: str | None) -> None:
    if not readme.is_file():
        return
    cal = prof.calibration
    acc = f", accuracy {prof.accuracy:.1%}" if prof.accuracy is not None else ""
    ref = (f"\n`{ref_file}` is the uncompressed model: with `--reference` the monitor also "
           f"checks top-1 agreement on one batch in ten (expected {prof.agreement:.1%})."
           if ref_file and prof.agreement is not None else "")
    text = readme.read_text() + _README.format(
        n=prof.n, acc=acc, fa=cal.fa_rate, horizon=cal.horizon, window=cal.window,
        step=cal.step, ref=ref, artifact=artifact,
        ref_arg=f" \\\n    --reference {ref_file}" if ref_file else "")
    readme.write_text(text)
