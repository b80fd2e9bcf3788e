"""The device view: what each compressor costs a client on a device profile, per round.

Upload bytes are measured (the simulation's messages). The client's extra compute is a
roofline *estimate* (Williams et al. 2009) of the compressor's own work on the profile,
``max(ops / (peak_fp32 * efficiency), bytes / bandwidth)``, where ops and bytes count the
passes over the update each stage makes (below), beside the encode time measured on this
host. Extra memory is the state kept between rounds (error-feedback residual, DGC velocity,
PowerSGD's Q) plus the transient buffers of one encode.

Example:
    >>> cost = compressor_cost("topk:0.01+ef", Layout(((200, 784), (200,))))
    >>> cost["state_bytes"]
    628000
"""

from __future__ import annotations

from typing import Any

from edgeshrink.federated.compress import Layout, lowrank_tensors
from edgeshrink.federated.spec import parse_spec

__all__ = ["compressor_cost", "device_view"]

# (ops per value, float32 passes over the update) of each stage; rough counts of the numpy code.
STAGE_COST = {"accumulate": (2, 3), "momentum": (2, 3), "clip": (2, 2), "topk": (8, 2),
              "q": (10, 3), "sign": (3, 2), "fp16": (1, 2), "fp32": (0, 1), "rice": (12, 1)}


def compressor_cost(spec: str, layout: Layout) -> dict[str, Any]:
    """Ops, bytes moved, state and transient memory of one encode (device independent)."""
    s = parse_spec(spec)
    d = layout.size
    stages = ["fp32" if s.values == "fp32" else ("sign" if s.values == "ternary" else s.values)]
    stages += [name for name, on in (("accumulate", s.ef), ("momentum", s.momentum),
                                     ("clip", s.clip), ("topk", s.density < 1),
                                     ("rice", s.density < 1 or s.values == "q")) if on]
    ops = sum(STAGE_COST[x][0] for x in stages) * d
    passes = sum(STAGE_COST[x][1] for x in stages)
    state = d * 4 * (bool(s.ef) + bool(s.momentum))
    for n, m in lowrank_tensors(layout, s.rank).values():
        ops += 3 * 2 * n * m * s.rank + 2 * n * s.rank**2  # M Q, M^T P, P Q^T; QR
        passes += 3
        state += m * s.rank * 4
    return {"ops": ops, "bytes_moved": passes * d * 4, "state_bytes": state,
            "transient_bytes": 3 * d * 4, "stages": stages}


def device_view(payload: dict[str, Any], device: str) -> list[dict[str, Any]]:
    """Per compressor of a simulation's results: upload per client-round, compute, memory."""
    from edgeshrink.devices import load_profile

    profile = load_profile(device)
    rows = []
    base_ms = _encode_ms(payload["runs"][0]) if payload["runs"] else 0.0
    for run in payload["runs"]:
        rounds = run["rounds"]
        shapes = run["layout"]
        cost = compressor_cost(run["compressor"], Layout(tuple(map(tuple, shapes))))
        rate = profile.peak_gmacs["fp32"] * 1e9 * profile.efficiency.get("compute", 0.3)
        est_ms = 1e3 * max(cost["ops"] / rate, cost["bytes_moved"] / (profile.memory_bandwidth_gbs * 1e9))
        clients = sum(r["clients"] for r in rounds) or 1
        rows.append({
            "compressor": run["compressor"], "device": profile.name,
            "upload_bytes_per_client_round": sum(r["bytes_up"] for r in rounds) / clients,
            "encode_ms_estimate": est_ms, "label": "estimate",
            "encode_ms_host": _encode_ms(run), "extra_ms_host": _encode_ms(run) - base_ms,
            "state_bytes": cost["state_bytes"], "transient_bytes": cost["transient_bytes"],
            "extra_memory_fraction_of_ram": (cost["state_bytes"] + cost["transient_bytes"])
            / profile.ram_bytes,
        })
    return rows


def _encode_ms(run: dict[str, Any]) -> float:
    rounds = run["rounds"]
    return sum(r["encode_ms_per_client"] for r in rounds) / max(len(rounds), 1)

