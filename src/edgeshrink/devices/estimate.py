"""Roofline latency and energy-per-inference *estimates* of a candidate on a device profile.

Latency (Williams, Waterman, Patterson, "Roofline", CACM 2009, plus fixed runtime costs):

    t = per_inference + ops * per_op + max(sum_p MACs_p / (peak[dtype_p] * efficiency),
                                          bytes / bandwidth)

where ``MACs_p`` are the MACs of the ops that run in precision ``p``, read from the shipped
file (:mod:`edgeshrink.measure.op_precision`; a dynamic-int8 ONNX of a CNN leaves every Conv
in fp32 and is credited with fp32 speed for them), and ``dtype_p`` the data type the device
computes ``p`` in. Without that split the whole model counts at its precision label.

where ``bytes`` = weights (read once) + activations (written and read once) at the precision
the device actually computes in, and ``bandwidth`` is the cache bandwidth when they fit in
cache, else DRAM bandwidth. Energy (Horowitz, "Computing's energy problem", ISSCC 2014):

    E = sum_p MACs_p * pJ/MAC[dtype_p] + bytes * pJ/byte + static_power * t

The hardware is honest here: a precision is faster only where the profile accelerates it
(otherwise the runtime computes in fp32 from weights expanded to fp32); unstructured
sparsity removes MACs only where the profile has sparse kernels (Han et al. 2016, EIE);
N:M sparsity halves the MACs only where 2:4 sparse tensor cores exist (Mishra et al. 2021).
Every figure made here is labelled ``"estimate"``.

Example:
    >>> w = Workload(name="lenet", macs=400_000, params=60_000, activation_elems=8_000)
    >>> estimate(w, load_profile("rpi4")).latency_ms > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeshrink.devices import Profile, load_profile  # noqa: F401  (load_profile: doc example)

__all__ = ["Workload", "Estimate", "estimate", "workload_from_candidate", "BYTES_PER_ELEM"]

BYTES_PER_ELEM = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5,
                  "int3": 0.375, "int2": 0.25, "ternary": 0.25, "binary": 0.125}
DEFAULT_OPS = 10  # node count assumed when a record does not carry one
NM_META_BITS = 2  # 2:4 keeps a 2-bit index per kept weight (Mishra et al. 2021)
CSR_INDEX_BYTES = 2  # a 16-bit column index per nonzero


@dataclass(frozen=True)
class Workload:
    """What one inference of a candidate costs, independent of any device.

    Attributes:
        macs: dense multiply-accumulates per sample (pruned channels already removed).
        params: parameters, zeros included (what a dense kernel reads).
        activation_elems: elements of intermediate activations per sample.
        precision: the weight precision that ships (``fp32``, ``fp16``, ``int8``, ``int4``...).
        sparsity, sparsity_kind: fraction of zero weights and ``none``/``unstructured``/
            ``structured``/``n:m``.
        ops: runtime graph nodes (each costs a dispatch); None: :data:`DEFAULT_OPS`.
        file_bytes: bytes of the artifact file; encoded_bytes: of its sparse/packed form.
        runtime: the target that runs the file (its per-op cost may be the device's own).
        macs_by_precision: ``{precision: MACs}`` of the shipped file's ops by the precision
            each runs in (only the proportions are used); None: all at ``precision``.
    """

    name: str
    macs: int
    params: int
    activation_elems: int = 0
    precision: str = "fp32"
    sparsity: float = 0.0
    sparsity_kind: str = "none"
    ops: int | None = None
    file_bytes: int = 0
    encoded_bytes: int | None = None
    macs_by_precision: dict[str, float] | None = None
    runtime: str = ""

    def precision_split(self) -> dict[str, float]:
        """``{precision: fraction of the MACs}``, summing to 1."""
        split = {p: float(m) for p, m in (self.macs_by_precision or {}).items() if m > 0}
        total = sum(split.values())
        if not total:
            return {self.precision: 1.0}
        return {p: m / total for p, m in split.items()}


@dataclass(frozen=True)
class Estimate:
    """The estimate for one workload on one profile; ``label`` is always ``"estimate"``."""

    latency_ms: float
    energy_mj: float
    compute_dtype: str
    effective_macs: float
    bytes_moved: float
    bound: str  # "compute", "memory" or "overhead"
    accelerated: bool
    ram_bytes: float
    storage_bytes: float
    fits_ram: bool
    fits_storage: bool
    notes: tuple[str, ...] = ()
    label: str = "estimate"
    parts_ms: dict[str, float] = field(default_factory=dict)
    dtype_split: dict[str, float] = field(default_factory=dict)  # compute dtype -> MAC share

    @property
    def fits_memory(self) -> bool:
        return self.fits_ram and self.fits_storage


def workload_from_candidate(c: Any) -> Workload:
    """A :class:`Workload` from a ``results.CandidateRecord`` (record fields only)."""
    notes = getattr(c, "notes", None) or {}
    # the ops the runtime dispatches (LiteRT/ExecuTorch builders: runtime_ops; ONNX: the
    # graph after ORT's fusions); a list of op names is a fact about kinds, not a count
    ops = next((n for n in (notes.get("runtime_ops"), notes.get("onnx_nodes"), notes.get("ops"))
                if isinstance(n, int) and not isinstance(n, bool) and n > 0), None)
    split = notes.get("macs_by_precision")
    return Workload(
        name=c.name, macs=int(c.macs), params=int(c.params or 0),
        activation_elems=int(c.activation_elems or 0), precision=str(c.precision),
        sparsity=float(c.sparsity or 0.0), sparsity_kind=str(c.sparsity_kind or "none"),
        ops=int(ops) if ops else None, file_bytes=int(c.size_bytes or 0),
        encoded_bytes=c.size_encoded_bytes,
        macs_by_precision=dict(split) if isinstance(split, dict) and split else None,
        runtime=str(getattr(c, "runtime", "") or ""),
    )


def compute_dtype(precision: str, profile: Profile) -> str:
    """The data type the device computes a ``precision`` model in: itself if accelerated."""
    if precision in ("fp32", "tf32"):
        return "fp32"
    if precision in ("fp16", "bf16"):
        return "fp16" if profile.supports("fp16") else "fp32"
    if precision in profile.accelerates and profile.supports(precision):
        return precision
    return "fp32"  # no kernel: the runtime expands the weights to fp32 (FIELD-NOTES, MiniLM)


def _activation_bytes(dtype: str) -> float:
    # Integer models keep 8-bit activations (w4a8, w8a8); float ones their own width.
    return {"fp16": 2.0, "fp32": 4.0}.get(dtype, 1.0)


def _sparse_effect(w: Workload, profile: Profile, wbytes: float) -> tuple[float, float, str]:
    """(effective MACs, weight bytes, note) after the sparsity the device can exploit."""
    keep = 1.0 - w.sparsity
    if w.sparsity_kind == "unstructured" and w.sparsity > 0:
        if profile.supports("unstructured"):
            per = wbytes / max(w.params, 1)
            sparse_bytes = w.params * keep * (per + CSR_INDEX_BYTES)
            return (w.macs * keep / profile.unstructured_efficiency, min(wbytes, sparse_bytes),
                    "sparse kernels skip the zero weights")
        return w.macs, wbytes, f"no sparse kernels on {profile.name}: the dense MACs count"
    if w.sparsity_kind == "n:m" and w.sparsity > 0:
        if profile.supports("2:4"):
            per = wbytes / max(w.params, 1)
            nm_bytes = w.params * 0.5 * (per + NM_META_BITS / 8)
            return w.macs * 0.5, nm_bytes, "2:4 sparse tensor cores halve the MACs"
        return w.macs, wbytes, f"no 2:4 sparse tensor cores on {profile.name}: dense MACs count"
    return w.macs, wbytes, ""


def _thread_scale(profile: Profile) -> float:
    return min(profile.threads, profile.cores) / profile.cores if profile.kind == "cpu" else 1.0


def _memory_need(w: Workload, profile: Profile, wbytes: float, act: float) -> tuple[float, float]:
    """(RAM bytes, storage bytes) the candidate needs on the device."""
    storage = float(w.file_bytes or wbytes)
    if w.sparsity_kind == "unstructured" and profile.supports("unstructured") and w.encoded_bytes:
        storage = float(w.encoded_bytes)
    ram = act + profile.runtime_overhead_mb * 2**20
    if profile.weights_in == "ram":
        ram += wbytes
    return ram, storage


def estimate(w: Workload, profile: Profile) -> Estimate:
    """Roofline latency and energy of one inference of ``w`` (batch 1) on ``profile``.

    Example:
        >>> est = estimate(Workload("m", macs=10**9, params=10**6), load_profile("a100"))
        >>> est.label
        'estimate'
    """
    dtype = compute_dtype(w.precision, profile)
    dense_bytes = w.params * BYTES_PER_ELEM.get(dtype, 4.0)
    macs, wbytes, sparse_note = _sparse_effect(w, profile, dense_bytes)
    act = w.activation_elems * _activation_bytes(dtype)
    moved = wbytes + 2 * act
    cached = profile.cache_bytes > 0 and moved <= profile.cache_bytes
    bandwidth = profile.cache_bandwidth_gbs if cached else profile.memory_bandwidth_gbs
    split = _dtype_split(w, profile)
    scale = profile.efficiency.get("compute", 0.3) * _thread_scale(profile) * 1e9
    compute_s = sum(macs * f / (profile.peak_gmacs.get(d, profile.peak_gmacs["fp32"]) * scale)
                    for d, f in split.items())
    memory_s = moved / (bandwidth * 1e9)
    ops = w.ops if w.ops is not None else DEFAULT_OPS
    over_s = (profile.overhead_us.get("per_inference", 0.0)
              + ops * profile.per_op_us(w.runtime)) * 1e-6
    latency_s = max(compute_s, memory_s) + over_s
    bound = "overhead" if over_s > max(compute_s, memory_s) else (
        "compute" if compute_s >= memory_s else "memory")
    e = profile.energy
    pj = e.get("pj_per_mac", {})
    pj_mac = sum(f * pj.get(d, pj.get("fp32", 0.0)) for d, f in split.items())
    pj_byte = e.get("pj_per_byte_cache" if cached else "pj_per_byte_dram", 0.0)
    energy_j = (macs * pj_mac + moved * pj_byte) * 1e-12 + e.get("static_power_w", 0.0) * latency_s
    ram, storage = _memory_need(w, profile, wbytes, act)
    notes = [n for n in (sparse_note, _precision_note(w.precision, dtype, profile),
                         _split_note(w, split)) if n]
    if w.ops is None:
        notes.append(f"graph node count unknown: {DEFAULT_OPS} assumed")
    return Estimate(
        latency_ms=latency_s * 1e3, energy_mj=energy_j * 1e3, compute_dtype=dtype,
        effective_macs=macs, bytes_moved=moved, bound=bound,
        accelerated=_accelerated(w, dtype, profile, split), ram_bytes=ram,
        storage_bytes=storage,
        fits_ram=ram <= profile.ram_bytes, fits_storage=storage <= profile.storage_bytes,
        notes=tuple(notes),
        parts_ms={"compute": compute_s * 1e3, "memory": memory_s * 1e3, "overhead": over_s * 1e3},
        dtype_split=split,
    )


def _dtype_split(w: Workload, profile: Profile) -> dict[str, float]:
    """``{compute dtype: fraction of the MACs}`` on ``profile`` (each op's precision mapped
    to what the device computes it in)."""
    out: dict[str, float] = {}
    for p, f in w.precision_split().items():
        d = compute_dtype(p, profile)
        out[d] = out.get(d, 0.0) + f
    return out


def _split_note(w: Workload, split: dict[str, float]) -> str:
    if w.macs_by_precision is None or w.precision in ("fp32", "tf32"):
        return ""
    fast = 1.0 - split.get("fp32", 0.0)
    if fast >= 0.999 or fast == 0.0:  # all fast, or none (the precision note says so)
        return ""
    return (f"only {100 * fast:.0f} % of the MACs run below fp32 on this device; "
            f"the rest of the {w.precision} file computes in fp32")


def _precision_note(precision: str, dtype: str, profile: Profile) -> str:
    if precision == dtype or precision in ("fp32", "tf32"):
        return ""
    return f"{precision} is not accelerated on {profile.name}: it computes in {dtype}"


def _accelerated(w: Workload, dtype: str, profile: Profile, split: dict[str, float]) -> bool:
    """Whether the technique that made ``w`` runs faster on this device than fp32 dense
    (for a reduced precision: most of its MACs run below fp32 here)."""
    if w.sparsity_kind == "unstructured" and w.sparsity > 0:
        return profile.supports("unstructured")
    if w.sparsity_kind == "n:m" and w.sparsity > 0 and not profile.supports("2:4"):
        return False
    return w.precision in ("fp32", "tf32") or (dtype != "fp32"
                                                and split.get("fp32", 0.0) < 0.5)
