"""The run folder: which files a study wrote, for which task and model, and their hashes.

A study's ``--out`` folder holds ``edgeshrink-run.json`` (the manifest): the task, the
task model's fingerprint (sha256 of its state dict), and the sha256 of every file the
study wrote, recorded at write time. With it a study

* refuses to write into a non-empty folder that is not a run of the same task (``--force``
  writes beside the folder's files and still deletes none of them);
* deletes, when it replaces a run, only the files the manifest lists;
* resumes (``--resume``) only the same task and model, and rebuilds every candidate whose
  files no longer match the hashes recorded when they were written.

Example:
    >>> folder = RunFolder.open("runs/demo", "zoo:lenet5-digits", model_fingerprint(model))
    >>> folder.record_new("baseline")
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgeshrink.errors import UserError

__all__ = ["MANIFEST", "RunFolder", "model_fingerprint", "check_out_dir"]

MANIFEST = "edgeshrink-run.json"
_FORMAT = 1
# Names a study writes whatever the plan; a foreign file there would be overwritten.
_RESERVED = ("results.json", "report.html", "recommended")
_TEMPORARY = re.compile(r"\.(.+)\.(?:[a-z0-9_]{8}|old)")  # tempfile.mkstemp's, the advisor's


def model_fingerprint(model) -> str:
    """sha256 over the model's state dict: names, dtypes, shapes and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    from edgeshrink.bench.session import sha256_file

    return sha256_file(path)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every regular file under ``root`` (POSIX path relative to it) -> (mtime_ns, size)."""
    if not root.is_dir():
        return {}
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return out


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("task"), str) or not isinstance(
            data.get("files"), dict):
        raise UserError(f"{path} is damaged, so edgeshrink cannot tell which files of {out} it "
                        "wrote; move the folder away or choose another --out.")
    return data


def check_out_dir(out: Path | str, task: str | None = None, *, resume: bool = False,
                  force: bool = False) -> None:
    """Refuse at once an ``--out`` the study may not write into (before any work starts).

    ``task`` None skips the task check (the CLI knows the task's name only once loaded).

    Raises:
        UserError: ``out`` is a file; a non-empty folder that is not an edgeshrink run
            (without ``force``); a run not resumed or forced; a run of another task resumed.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the run (it is created).")
    if not out.is_dir() or not any(out.iterdir()):
        return
    data = _read_manifest(out)
    if data is None:
        if not force:
            raise UserError(f"--out {out} is not empty and is not an edgeshrink run (it has no "
                            f"{MANIFEST}); choose a new folder, or pass --force to write beside "
                            "its files (none of them is deleted).")
        taken = [n for n in _RESERVED if (out / n).exists()]
        if taken:
            raise UserError(f"--out {out} already holds {taken[0]}, which edgeshrink did not "
                            "write; move it away or choose another --out.")
        return
    if resume and task is not None and data["task"] != task:
        raise UserError(f"--out {out} is a run of {data['task']}, not {task}; --resume continues "
                        "only the same task, so choose another --out.")
    if not resume and not force:
        raise UserError(f"--out {out} already holds a run of {data['task']}; pass --resume to "
                        "continue it, --force to replace it, or choose another --out.")


@dataclass
class RunFolder:
    """A run folder and its manifest (see the module doc)."""

    path: Path
    task: str
    fingerprint: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    candidates: dict[str, list[str]] = field(default_factory=dict)
    foreign: set[str] = field(default_factory=set)  # there before; never touched

    @classmethod
    def open(cls, out: Path | str, task: str, fingerprint: str, *, resume: bool = False,
             force: bool = False) -> RunFolder:
        """Check ``out`` (as :func:`check_out_dir`, plus the model fingerprint) and claim it.

        A run replaced with ``force`` loses the files its manifest lists, nothing else.
        """
        out = Path(out)
        check_out_dir(out, task, resume=resume, force=force)
        data = _read_manifest(out) if out.is_dir() else None
        if data is not None and resume and data.get("fingerprint") != fingerprint:
            raise UserError(f"--out {out} is a run of {task} with other model weights "
                            "(fingerprint differs); --resume continues only the same model, so "
                            "choose another --out or pass --force instead of --resume.")
        folder = cls(out, task, fingerprint)
        if data is not None and resume:
            folder.files = {str(k): str(v) for k, v in data["files"].items()}
            folder.candidates = {str(k): list(v) for k, v in data.get("candidates", {}).items()}
            folder.foreign = set(data.get("foreign", []))
        elif data is not None:  # --force over a run: remove what it wrote, keep the rest
            later = {f for f in set(_files(out)) - set(data["files"]) - {MANIFEST}
                     if f.split("/")[0] not in _RESERVED}  # `recommend` rewrites those
            folder.foreign = set(data.get("foreign", [])) | later
            folder._delete(data["files"])
        else:
            folder.foreign = set(_files(out))
        out.mkdir(parents=True, exist_ok=True)
        folder._sweep_temporaries()
        folder.save()
        return folder

    def _sweep_temporaries(self) -> None:
        """Remove what a killed write left: ``.NAME.xxxxxxxx`` beside a file of ours."""
        import shutil

        for path in list(self.path.rglob(".*")):
            rel = path.relative_to(self.path).as_posix()
            m = _TEMPORARY.fullmatch(path.name)
            if rel in self.foreign or not m:
                continue
            if path.is_dir() and m.group(1) == "recommended":
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and (m.group(1) in _RESERVED + (MANIFEST,) or (
                    path.parent / m.group(1)).relative_to(self.path).as_posix() in self.files
                    or path.parent.name == "artifacts"):
                path.unlink()

    def _delete(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.foreign:
                continue
            target = self.path / name
            if target.is_file() or target.is_symlink():
                target.unlink()
        for name in sorted(names, key=lambda n: -n.count("/")):  # emptied folders we made
            parent = (self.path / name).parent
            while parent != self.path and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def save(self) -> None:
        """Write the manifest atomically."""
        from edgeshrink.results import atomic_write_text

        data = {"format": _FORMAT, "tool": "edgeshrink", "task": self.task,
                "fingerprint": self.fingerprint, "files": dict(sorted(self.files.items())),
                "candidates": self.candidates, "foreign": sorted(self.foreign)}
        atomic_write_text(self.path / MANIFEST, json.dumps(data, indent=1) + "\n")

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """The files in the folder now, with their mtime and size (see :meth:`record_new`)."""
        return _files(self.path)

    def check_collisions(self, stems: Iterable[str]) -> None:
        """Refuse to write artifacts over foreign files (``--force`` into a user's folder)."""
        for stem in stems:
            for name in self.foreign:
                if name.startswith("artifacts/") and Path(name).name.startswith(f"{stem}."):
                    raise UserError(f"{self.path / name} was not written by edgeshrink and "
                                    f"candidate {stem} would overwrite it; move it away or "
                                    "choose another --out.")

    def record(self, candidate: str | None, names: Iterable[str]) -> None:
        """Hash ``names`` (relative paths) as written now, under ``candidate`` if given."""
        names = sorted(n for n in names if n != MANIFEST and n not in self.foreign
                       and (self.path / n).is_file())
        for name in names:
            self.files[name] = _sha256(self.path / name)
        if candidate is not None:
            self.candidates[candidate] = names
        self.save()

    def record_new(self, candidate: str | None, before: dict[str, tuple[int, int]]) -> None:
        """Record the files that appeared or changed since the snapshot ``before``."""
        now = self.snapshot()
        self.record(candidate, [n for n, stat in now.items() if before.get(n) != stat])

    def adopt_all(self) -> None:
        """Record every file that is not foreign (after reports and hand-overs are written)."""
        self.record(None, set(self.snapshot()) - self.foreign)

    @classmethod
    def existing(cls, out: Path | str) -> RunFolder | None:
        """The run folder at ``out`` as its manifest describes it, or None if it has none."""
        out = Path(out)
        data = _read_manifest(out) if out.is_dir() else None
        if data is None:
            return None
        return cls(out, data["task"], str(data.get("fingerprint", "")),
                   {str(k): str(v) for k, v in data["files"].items()},
                   {str(k): list(v) for k, v in data.get("candidates", {}).items()},
                   set(data.get("foreign", [])))

    def verify(self, candidate: str) -> str | None:
        """None when every file of ``candidate`` matches its recorded sha256, else why not."""
        names = self.candidates.get(candidate)
        if not names:
            return "no files were recorded for it"
        for name in names:
            path = self.path / name
            if not path.is_file():
                return f"{name} is missing"
            if _sha256(path) != self.files.get(name):
                return f"{name} does not match the sha256 recorded when it was written"
        return None
