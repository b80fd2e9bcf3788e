"""Compressor specs: ``topk:0.01+ef``, ``q8``, ``stc:0.01``, ``powersgd:2+ef`` ... parsed and checked.

Terms joined with ``+`` (order does not matter):

================  ==============================================================
``none``/``fp32``  values as float32 (the uncompressed baseline)
``fp16``           values as float16
``q8 q4 q2``       QSGD-style stochastic quantization to 8/4/2 bits (``qsgd:B``)
``sign``           scaled sign, 1 bit per value (``efsign`` = ``sign+ef``)
``ternary``        ternary values +-mu (``stc:D`` = ``topk:D+ternary+ef``)
``topk:D``         send only the fraction D of largest-magnitude values
``powersgd:R``     rank-R factors of every matrix (PowerSGD)
``ef``             error feedback: keep what was not sent and add it next round
``dgc[:M]``        DGC momentum correction (momentum M, default 0.9) with
                   momentum-factor masking; implies ``ef``
``warmup:R``       DGC sparsity warm-up: density falls exponentially to D over R rounds
``clip:C``         DGC local clipping of the update's L2 norm to C
``bucket:N``       values per QSGD scale (default 512)
================  ==============================================================

Example:
    >>> s = parse_spec("topk:0.01+q8+ef")
    >>> s.density, s.values, s.bits, s.ef, s.wire()
    (0.01, 'q', 8, True, 'topk:0.01+q8')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeshrink.errors import UserError

__all__ = ["CompressorSpec", "parse_spec", "VALUE_CODERS"]

VALUE_CODERS = ("fp32", "fp16", "q", "sign", "ternary")
WARMUP_START_DENSITY = 0.04  # DGC starts at 75 % sparsity; over a few FL rounds less pays


@dataclass(frozen=True)
class CompressorSpec:
    """What a compressor does. ``wire()`` is the part the receiver needs; the rest is client state.

    Attributes:
        values: how values travel: ``fp32``, ``fp16``, ``q`` (QSGD), ``sign``, ``ternary``.
        bits: bits per quantized value (``q`` only): 8, 4 or 2.
        density: fraction of values sent (top-k); 1.0 sends all.
        rank: PowerSGD rank; 0 sends tensors whole.
        bucket: values that share one QSGD scale.
        ef: error feedback. momentum: DGC momentum correction (0 = off).
        warmup: rounds of DGC sparsity warm-up. clip: local L2 clipping norm (0 = off).
    """

    values: str = "fp32"
    bits: int = 32
    density: float = 1.0
    rank: int = 0
    bucket: int = 512
    ef: bool = False
    momentum: float = 0.0
    warmup: int = 0
    clip: float = 0.0

    def __post_init__(self) -> None:
        if self.values not in VALUE_CODERS:
            raise UserError(f"value coding must be one of {', '.join(VALUE_CODERS)}; got {self.values!r}.")
        if self.values == "q" and self.bits not in (2, 4, 8):
            raise UserError(f"QSGD bits must be 8, 4 or 2; got {self.bits}.")
        if not 0.0 < self.density <= 1.0:
            raise UserError(f"top-k density must be in (0, 1]; got {self.density}.")
        if not 0 <= self.rank <= 64:
            raise UserError(f"PowerSGD rank must be in [1, 64]; got {self.rank}.")
        if not 16 <= self.bucket <= 65536:
            raise UserError(f"QSGD bucket must be in [16, 65536]; got {self.bucket}.")
        if not 0.0 <= self.momentum < 1.0:
            raise UserError(f"DGC momentum must be in [0, 1); got {self.momentum}.")
        if self.warmup < 0 or (self.warmup and self.density == 1.0):
            raise UserError("warmup:R needs a top-k term (it ramps the density down to D).")
        if not (self.clip >= 0 and math.isfinite(self.clip)):
            raise UserError(f"clip must be a non-negative norm; got {self.clip}.")
        if self.values == "sign" and self.density < 1.0:
            raise UserError("sign sends every value; with top-k use `ternary` (STC) instead.")

    def wire(self) -> str:
        """The canonical wire spec: what a decoder needs, e.g. ``powersgd:2+topk:0.01+q8``."""
        terms = [f"powersgd:{self.rank}"] if self.rank else []
        if self.density < 1.0:
            terms.append(f"topk:{self.density:g}")
        if self.values != "fp32" or not terms:
            terms.append(f"q{self.bits}" if self.values == "q" else self.values)
        if self.values == "q" and self.bucket != 512:
            terms.append(f"bucket:{self.bucket}")
        return "+".join(terms)

    def __str__(self) -> str:
        terms = [self.wire()]
        if self.momentum:
            terms.append(f"dgc:{self.momentum:g}")
        elif self.ef:
            terms.append("ef")
        if self.warmup:
            terms.append(f"warmup:{self.warmup}")
        if self.clip:
            terms.append(f"clip:{self.clip:g}")
        return "+".join(terms)

    def density_at(self, round_: int) -> float:
        """Top-k density in ``round_`` (0-based), after DGC's exponential warm-up."""
        if not self.warmup or round_ >= self.warmup:
            return self.density
        start = max(self.density, WARMUP_START_DENSITY)
        return start * (self.density / start) ** (round_ / self.warmup)


def _number(term: str, arg: str, kind=float):
    try:
        return kind(arg)
    except ValueError:
        raise UserError(f"compressor term {term!r} needs a number after ':'.") from None


def _apply(term: str, fields: dict) -> None:
    name, _, arg = term.partition(":")
    values = {"none": "fp32", "fp32": "fp32", "fp16": "fp16", "sign": "sign", "ternary": "ternary"}
    if name in values and not arg:
        fields["values"] = values[name]
    elif name in ("q8", "q4", "q2", "int8", "int4", "int2") and not arg:
        fields.update(values="q", bits=int(name[-1]))
    elif name == "qsgd":
        fields.update(values="q", bits=_number(term, arg, int))
    elif name == "efsign" and not arg:
        fields.update(values="sign", ef=True)
    elif name == "topk":
        fields["density"] = _number(term, arg)
    elif name == "stc":
        fields.update(density=_number(term, arg), values="ternary", ef=True)
    elif name == "powersgd":
        fields["rank"] = _number(term, arg, int)
        if fields["rank"] < 1:
            raise UserError(f"PowerSGD rank must be in [1, 64]; got {fields['rank']}.")
    elif name == "ef" and not arg:
        fields["ef"] = True
    elif name == "dgc":
        fields.update(momentum=_number(term, arg) if arg else 0.9, ef=True)
    elif name in ("warmup", "bucket"):
        fields[name] = _number(term, arg, int)
    elif name == "clip":
        fields["clip"] = _number(term, arg)
    else:
        raise UserError(f"unknown compressor term {term!r}; use none, fp16, q8, q4, q2, sign, "
                        "efsign, ternary, topk:D, stc:D, powersgd:R, ef, dgc[:M], warmup:R, "
                        "clip:C, bucket:N joined with '+'.")


def parse_spec(text: str | CompressorSpec) -> CompressorSpec:
    """A :class:`CompressorSpec` from its text; every mistake is one :class:`UserError` sentence."""
    if isinstance(text, CompressorSpec):
        return text
    terms = [t.strip().lower() for t in str(text).split("+")]
    if not text or any(not t for t in terms):
        raise UserError(f"compressor spec {text!r} has an empty term; e.g. topk:0.01+ef.")
    fields: dict = {}
    for term in terms:
        _apply(term, fields)
    return CompressorSpec(**fields)
