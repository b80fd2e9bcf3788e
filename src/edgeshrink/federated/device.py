"""The device view: what each compressor costs a client on a device profile, per round.

Upload bytes are measured (the simulation's messages). The client's compute is the encode time
measured on this host scaled to the device by the profiles' per-core compute and memory
bandwidth ratios (an *estimate*), beside a roofline floor (Williams et al. 2009) of the
compressor's own work, ``max(ops / (peak_fp32 per core * efficiency), bytes / bandwidth)``,
where ops and bytes count the passes over the update each stage makes (below). Extra memory is the state kept between rounds (error-feedback residual, DGC velocity,
PowerSGD's Q) plus the transient buffers of one encode.

Example:
    >>> cost = compressor_cost("topk:0.01+ef", Layout(((200, 784), (200,))))
    >>> cost["state_bytes"]
    628000
"""

from __future__ import annotations

from typing import Any

from edgeshrink.federated.compress import POWER_ITERS, Layout, lowrank_tensors
from edgeshrink.federated.spec import parse_spec

__all__ = ["compressor_cost", "device_view", "host_to_device_scale"]

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
        iters = POWER_ITERS  # M Q and M^T P per iteration, P Q^T once; QR per iteration
        ops += (2 * iters + 1) * n * m * s.rank + iters * 2 * n * s.rank**2
        passes += 3
        state += m * s.rank * 4
    return {"ops": ops, "bytes_moved": passes * d * 4, "state_bytes": state,
            "transient_bytes": 3 * d * 4, "stages": stages}


def _per_core(profile) -> tuple[float, float]:
    """(fp32 GMAC/s, GB/s) one core of a profile gets: the encoders are single-threaded."""
    cores = profile.cores if profile.kind == "cpu" else 1
    return profile.peak_gmacs["fp32"] / cores, profile.memory_bandwidth_gbs


def host_to_device_scale(device, host=None) -> float:
    """How much slower single-threaded numpy work runs on ``device`` than on the study host:
    the larger of the per-core compute and the memory bandwidth ratios (an estimate)."""
    from edgeshrink.devices import list_profiles

    if host is None:
        hosts = [p for p in list_profiles().values() if p.study_host]
        host = hosts[0] if hosts else device
    (hc, hb), (dc, db) = _per_core(host), _per_core(device)
    return max(hc / dc, hb / db, 1e-9)


def device_view(payload: dict[str, Any], device: str) -> list[dict[str, Any]]:
    """Per compressor of a simulation's results: upload per client-round, compute, memory.

    Compute: the encode time measured on this host, times :func:`host_to_device_scale`
    (label ``estimate``), and the roofline floor of :func:`compressor_cost` on the device.
    """
    from edgeshrink.devices import load_profile

    profile = load_profile(device)
    scale = host_to_device_scale(profile)
    base_ms = _encode_ms(payload["runs"][0]) if payload["runs"] else 0.0
    core_rate, bandwidth = _per_core(profile)
    rows = []
    for run in payload["runs"]:
        rounds = run["rounds"]
        cost = compressor_cost(run["compressor"], Layout(tuple(map(tuple, run["layout"]))))
        rate = core_rate * 1e9 * profile.efficiency.get("compute", 0.3)
        floor_ms = 1e3 * max(cost["ops"] / rate, cost["bytes_moved"] / (bandwidth * 1e9))
        clients = sum(r["clients"] for r in rounds) or 1
        host_ms = _encode_ms(run)
        rows.append({
            "compressor": run["compressor"], "device": profile.name, "label": "estimate",
            "upload_bytes_per_client_round": sum(r["bytes_up"] for r in rounds) / clients,
            "encode_ms_host": host_ms, "extra_ms_host": host_ms - base_ms,
            "encode_ms_estimate": host_ms * scale, "extra_ms_estimate": (host_ms - base_ms) * scale,
            "roofline_floor_ms": floor_ms, "host_to_device_scale": scale,
            "state_bytes": cost["state_bytes"], "transient_bytes": cost["transient_bytes"],
            "extra_memory_fraction_of_ram": (cost["state_bytes"] + cost["transient_bytes"])
            / profile.ram_bytes,
        })
    return rows


def _encode_ms(run: dict[str, Any]) -> float:
    rounds = run["rounds"]
    return sum(r["encode_ms_per_client"] for r in rounds) / max(len(rounds), 1)

