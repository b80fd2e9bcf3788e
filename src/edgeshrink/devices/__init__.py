"""Device profiles: what a target device can hold, how fast it computes, what it accelerates.

A profile is a YAML file (``devices/profiles/NAME.yaml``; see ``raspberry-pi-4.yaml`` for
every field, each with the source of its figure). Users add their own by passing a path,
or by putting files in a folder named by ``$EDGESHRINK_DEVICES`` (several folders may be
joined with ``os.pathsep``); a user file with the name of a shipped one replaces it.

Example:
    >>> pi = load_profile("rpi4")
    >>> pi.name, pi.accelerates["int8"]
    ('raspberry-pi-4', True)
    >>> [(r.name, r.formats) for r in pi.runtimes][0]
    ('litert', ('int8', 'fp32'))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeshrink.config import check_choice
from edgeshrink.errors import UserError

__all__ = ["Profile", "RuntimeEntry", "load_profile", "list_profiles", "ACCELERATION_KEYS",
           "PRIORITIES", "RUNTIME_FORMATS"]

PROFILE_DIR = Path(__file__).parent / "profiles"
ACCELERATION_KEYS = ("int8", "fp16", "int4", "2:4", "unstructured")
PRIORITIES = ("accuracy", "size", "speed", "energy")
KINDS = ("cpu", "gpu", "npu", "mcu")
# runtime (a target name, :data:`edgeshrink.targets.TARGET_NAMES`) -> the formats a profile
# may say it accelerates; the device-driven plan (edgeshrink.study.plans.device) builds each
# in that runtime's own file (docs/device-profiles.md lists which file each one is)
RUNTIME_FORMATS = {
    "onnxruntime": ("fp32", "fp16", "int8", "int8-dynamic"),
    "openvino": ("fp32", "int8"),
    "litert": ("fp32", "fp16", "int8-dynamic", "int8"),
    "executorch": ("fp32", "int8"),
    "tensorrt": ("fp32", "fp16", "int8"),
}


@dataclass(frozen=True)
class RuntimeEntry:
    """A runtime that ships on a device, and the formats it runs fast there.

    Attributes:
        name: the target that builds and runs its files (``litert``, ``executorch``,
            ``onnxruntime``, ``openvino``, ``tensorrt``).
        formats: precisions it accelerates on this device, preferred first (see
            :data:`RUNTIME_FORMATS`).
        micro: LiteRT only: the device runs TensorFlow Lite Micro (full-integer ``.tflite``
            with int8 input/output, TFLM op check, tensor arena, C array header).
        note: what a person should know (kernels, quantization scheme).
        per_op_us: the dispatch cost of one op in this runtime, where it differs from the
            profile's ``overhead_us.per_op`` (XNNPACK runs a delegated graph as one call).
    """

    name: str
    formats: tuple[str, ...]
    micro: bool = False
    note: str = ""
    per_op_us: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "formats": list(self.formats), "micro": self.micro,
                "note": self.note, "per_op_us": self.per_op_us}

    def label(self) -> str:
        """``litert (micro): int8``."""
        return f"{self.name}{' (micro)' if self.micro else ''}: {', '.join(self.formats)}"
_REQUIRED = (
    "name", "description", "kind", "ram_mb", "storage_mb", "cores", "peak_gmacs",
    "memory_bandwidth_gbs", "accelerates", "energy", "sources",
)


@dataclass(frozen=True)
class Profile:
    """One device, as data. Rates are for the whole device at ``threads`` runtime threads.

    Attributes:
        peak_gmacs: peak multiply-accumulates per second (1e9) by data type; ``fp32`` required.
        accelerates: which of int8 / fp16 / int4 / 2:4 / unstructured the runtime runs faster.
        efficiency: ``{"compute": f}``: the fraction of peak a batch-1 runtime reaches.
        overhead_us: ``{"per_inference": a, "per_op": b}``: fixed runtime costs.
        energy: ``pj_per_mac`` by dtype, ``pj_per_byte_dram``, ``pj_per_byte_cache``,
            ``static_power_w`` (drawn for as long as an inference runs).
        weights_in: ``ram`` or ``storage`` (microcontrollers execute weights from flash).
        study_host: True when this profile describes the machine studies run on, so the
            latencies a study measured are this device's measured latencies.
        runtimes: the runtimes that ship on the device, preferred first, each with the
            formats it accelerates (:class:`RuntimeEntry`); ``study --device`` builds its
            candidates in them. Empty in an older user profile: ONNX Runtime fp32 + int8.
        cpu_flags: the instruction-set flags of the CPU that runs the CPU runtimes, spelt
            as Linux's /proc/cpuinfo does (``avx2``, ``avx512_vnni``, ``asimd``,
            ``asimddp``; :data:`edgeshrink.bench.machine.KNOWN_FLAGS`). ``study --device``
            builds ONNX Runtime INT8 files for them
            (:func:`edgeshrink.targets.onnxruntime.int8_format`); empty: unknown, this
            machine's flags decide.
    """

    name: str
    description: str
    kind: str
    ram_mb: float
    storage_mb: float
    cores: int
    peak_gmacs: dict[str, float]
    memory_bandwidth_gbs: float
    accelerates: dict[str, bool]
    energy: dict[str, Any]
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    runtime: str = ""
    threads: int = 1
    usable_ram_fraction: float = 1.0
    weights_in: str = "ram"
    cache_bytes: int = 0
    cache_bandwidth_gbs: float = 0.0
    efficiency: dict[str, float] = field(default_factory=lambda: {"compute": 0.3})
    overhead_us: dict[str, float] = field(
        default_factory=lambda: {"per_inference": 0.0, "per_op": 0.0}
    )
    runtime_overhead_mb: float = 0.0
    unstructured_efficiency: float = 0.3
    default_priority: str = "accuracy"
    study_host: bool = False
    runtimes: tuple[RuntimeEntry, ...] = ()
    cpu_flags: tuple[str, ...] = ()
    path: str = ""

    def __post_init__(self) -> None:
        where = f"device profile {self.path or self.name}"
        _check_types(self, where)
        check_choice(f"{where}: kind", self.kind, KINDS)
        check_choice(f"{where}: weights_in", self.weights_in, ("ram", "storage"))
        check_choice(f"{where}: default_priority", self.default_priority, PRIORITIES)
        if "fp32" not in self.peak_gmacs:
            raise UserError(f"{where}: peak_gmacs needs an fp32 entry.")
        numbers = {"ram_mb": self.ram_mb, "storage_mb": self.storage_mb,
                   "memory_bandwidth_gbs": self.memory_bandwidth_gbs, "cores": self.cores,
                   "threads": self.threads, **{f"peak_gmacs.{k}": v for k, v in
                                               self.peak_gmacs.items()}}
        for key, value in numbers.items():
            if not _number(value) or value <= 0:
                raise UserError(f"{where}: {key} must be a positive number, got {value!r}.")
        unknown = sorted(set(self.accelerates) - set(ACCELERATION_KEYS))
        if unknown:
            raise UserError(f"{where}: accelerates has unknown key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(ACCELERATION_KEYS)}.")
        if not self.sources:
            raise UserError(f"{where}: list the sources of its figures under `sources:`.")
        _check_runtimes(self.runtimes, where)
        _check_cpu_flags(self.cpu_flags, where)

    @property
    def ram_bytes(self) -> float:
        """RAM an application may use, in bytes."""
        return self.ram_mb * 2**20 * self.usable_ram_fraction

    @property
    def storage_bytes(self) -> float:
        return self.storage_mb * 2**20

    def supports(self, what: str) -> bool:
        """Whether the runtime on this device accelerates ``what`` (a key of ACCELERATION_KEYS)."""
        return bool(self.accelerates.get(what, False))

    def summary(self) -> dict[str, Any]:
        """Plain data for results.json (``RunRecord.device``)."""
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "ram_mb": self.ram_mb, "storage_mb": self.storage_mb, "threads": self.threads,
                "accelerates": dict(self.accelerates), "runtime": self.runtime,
                "runtimes": [r.summary() for r in self.runtimes],
                "cpu_flags": list(self.cpu_flags)}

    def per_op_us(self, runtime: str = "") -> float:
        """Dispatch cost (µs) of one op of a file for ``runtime`` on this device."""
        for entry in self.runtimes:
            if entry.name == runtime and entry.per_op_us is not None:
                return entry.per_op_us
        return self.overhead_us.get("per_op", 0.0)

    def shipped_runtimes(self) -> tuple[RuntimeEntry, ...]:
        """:attr:`runtimes`, or ONNX Runtime fp32 + int8 for a profile that names none."""
        return self.runtimes or (RuntimeEntry("onnxruntime", ("int8", "fp32"),
                                              note="no `runtimes:` in the profile"),)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_runtimes(runtimes: tuple[RuntimeEntry, ...], where: str) -> None:
    seen = set()
    for r in runtimes:
        if not isinstance(r, RuntimeEntry):
            raise UserError(f"{where}: runtimes must be RuntimeEntry values, got {r!r}.")
        if r.name not in RUNTIME_FORMATS:
            raise UserError(f"{where}: runtimes: unknown runtime {r.name!r}; known: "
                            f"{', '.join(RUNTIME_FORMATS)}.")
        if r.name in seen:
            raise UserError(f"{where}: runtimes: {r.name} is listed twice.")
        seen.add(r.name)
        allowed = RUNTIME_FORMATS[r.name]
        bad = [f for f in r.formats if f not in allowed]
        if bad or not r.formats:
            raise UserError(f"{where}: runtimes: {r.name} formats must be some of "
                            f"{', '.join(allowed)}, got {list(r.formats)!r}.")
        if r.micro and (r.name != "litert" or set(r.formats) != {"int8"}):
            raise UserError(f"{where}: runtimes: micro is for litert with formats [int8] only "
                            "(TensorFlow Lite Micro runs full-integer files).")


def _check_cpu_flags(flags: tuple[str, ...], where: str) -> None:
    """Known flag names only: a misspelt ``avx512vnni`` would silently read as absent and
    pick the wrong INT8 weight format."""
    from edgeshrink.bench.machine import KNOWN_FLAGS

    if not all(isinstance(f, str) for f in flags):
        raise UserError(f"{where}: cpu_flags must be a list of text such as [avx2, fma].")
    unknown = [f for f in flags if f not in KNOWN_FLAGS]
    if unknown:
        raise UserError(f"{where}: cpu_flags has unknown flag(s) {', '.join(unknown)}; known: "
                        f"{', '.join(KNOWN_FLAGS)} (as /proc/cpuinfo spells them).")


def _runtime_entries(raw: Any, path: Path) -> tuple[RuntimeEntry, ...]:
    """``runtimes:`` as YAML gives it: a list of ``{name, formats, micro?, note?}``."""
    where = f"device profile {path}: runtimes"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UserError(f"{where} must be a list such as [{{name: litert, formats: [int8]}}].")
    entries = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise UserError(f"{where}: each entry needs a name and formats, such as "
                            f"{{name: litert, formats: [int8, fp32]}}; got {item!r}.")
        unknown = sorted(set(item) - {"name", "formats", "micro", "note", "per_op_us"})
        if unknown:
            raise UserError(f"{where}: {item['name']} has unknown key(s) {', '.join(unknown)}.")
        formats = item.get("formats")
        if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
            raise UserError(f"{where}: {item['name']} formats must be a list such as "
                            "[int8, fp32].")
        if not isinstance(item.get("micro", False), bool) or not isinstance(
                item.get("note", ""), str):
            raise UserError(f"{where}: {item['name']}: micro must be true or false and note "
                            "text.")
        per_op = item.get("per_op_us")
        if per_op is not None and not (_number(per_op) and per_op >= 0):
            raise UserError(f"{where}: {item['name']}: per_op_us must be a number of "
                            f"microseconds >= 0, got {per_op!r}.")
        entries.append(RuntimeEntry(item["name"], tuple(formats), item.get("micro", False),
                                    item.get("note", ""),
                                    None if per_op is None else float(per_op)))
    return tuple(entries)


def _check_types(p: Profile, where: str) -> None:
    """Every field of the type the estimators use, so that a wrong profile fails when it is
    loaded (before a study), not inside the advisor after it."""
    for key in ("name", "description", "kind", "runtime", "weights_in", "default_priority"):
        if not isinstance(getattr(p, key), str):
            raise UserError(f"{where}: {key} must be text, got {getattr(p, key)!r}.")
    for key in ("sources", "aliases"):
        if not all(isinstance(s, str) for s in getattr(p, key)):
            raise UserError(f"{where}: {key} must be a list of text.")
    for key in ("usable_ram_fraction", "cache_bytes", "cache_bandwidth_gbs",
                "runtime_overhead_mb", "unstructured_efficiency"):
        value = getattr(p, key)
        if not _number(value) or value < 0:
            raise UserError(f"{where}: {key} must be a number >= 0, got {value!r}.")
    if not 0 < p.usable_ram_fraction <= 1:
        raise UserError(f"{where}: usable_ram_fraction must be in (0, 1], got "
                        f"{p.usable_ram_fraction!r}.")
    tables = {"peak_gmacs": p.peak_gmacs, "efficiency": p.efficiency,
              "overhead_us": p.overhead_us,
              "energy": {k: v for k, v in p.energy.items() if k != "pj_per_mac"}
              if isinstance(p.energy, dict) else p.energy,
              "energy.pj_per_mac": p.energy.get("pj_per_mac", {})
              if isinstance(p.energy, dict) else {}}
    for key, table in tables.items():
        if not isinstance(table, dict) or not all(
                isinstance(k, str) and _number(v) and v >= 0 for k, v in table.items()):
            raise UserError(f"{where}: {key} must map names to numbers >= 0, got {table!r}.")


def _search_dirs() -> list[Path]:
    extra = os.environ.get("EDGESHRINK_DEVICES", "")
    return [Path(p) for p in extra.split(os.pathsep) if p] + [PROFILE_DIR]


def _read(path: Path) -> Profile:
    from edgeshrink.userfiles import load_yaml_file

    data = load_yaml_file(path, "device profile")
    if not isinstance(data, dict):
        raise UserError(f"device profile {path} must be a YAML mapping of fields.")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise UserError(f"device profile {path} lacks {', '.join(missing)}; "
                        f"see {PROFILE_DIR / 'raspberry-pi-4.yaml'} for every field.")
    names = set(Profile.__dataclass_fields__)
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"device profile {path}: unknown field(s) {', '.join(unknown)}.")
    for key in ("sources", "aliases", "cpu_flags"):
        if not isinstance(data.get(key) or [], list):
            raise UserError(f"device profile {path}: {key} must be a list.")
    if not isinstance(data["accelerates"], dict):
        raise UserError(f"device profile {path}: accelerates must map int8/fp16/... to "
                        "true or false.")
    data["sources"] = tuple(data["sources"] or ())
    data["aliases"] = tuple(data.get("aliases") or ())
    data["cpu_flags"] = tuple(data.get("cpu_flags") or ())
    data["accelerates"] = {str(k): bool(v) for k, v in data["accelerates"].items()}
    data["runtimes"] = _runtime_entries(data.get("runtimes"), path)
    return Profile(**data, path=str(path))


def list_profiles() -> dict[str, Profile]:
    """Every known profile by name: user folders first (they win), then the shipped ones."""
    found: dict[str, Profile] = {}
    for folder in _search_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.y*ml")):
            profile = _read(path)
            found.setdefault(profile.name, profile)
    return dict(sorted(found.items()))


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """A profile by name, alias, or path of a YAML file.

    Raises:
        UserError: no such device; the message lists the known ones.
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        if not Path(text).is_file():
            raise UserError(f"device profile file {text} does not exist.")
        return _read(Path(text))
    profiles = list_profiles()
    for profile in profiles.values():
        if text.lower() in (profile.name, *profile.aliases):
            return profile
    raise UserError(f"unknown device {text!r}; known devices: {', '.join(profiles)} "
                    "(or pass a profile YAML path, or set $EDGESHRINK_DEVICES).")
