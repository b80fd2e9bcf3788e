"""A one-machine FedAvg simulation with compressed uploads and downloads, in bytes on the wire.

Each round the server broadcasts the change of its model since the last broadcast (compressed
with the download spec; the difference between the server's model and what clients hold is
carried into the next broadcast, so the download feeds its error back by construction), a
sampled fraction of clients trains ``local_steps`` minibatch SGD steps from the model they
hold, applies DP (if set) and the upload compressor, and the server decodes every message
(refusing malformed ones) and adds the sample-weighted mean update (FedAvg, McMahan et al.
2017). Every compressor of one call starts from the same weights and sees the same client
sampling and minibatches, so the runs differ only in compression.

A client that missed broadcasts downloads them all, or the dense model if that is smaller.

Example:
    >>> cfg = FedConfig(task="digits", clients=4, rounds=2, alpha=None, hidden=32)
    >>> out = simulate(cfg, ["none", "q8"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.federated.bits import WireError
from edgeshrink.federated.compress import DOWNLOAD, UPLOAD, Compressor, Layout, decode_update
from edgeshrink.federated.data import TASKS, FedData, load_task_data, split_clients
from edgeshrink.federated.dp import privatize
from edgeshrink.federated.model import accuracy, init_mlp, sgd_steps
from edgeshrink.federated.spec import parse_spec

__all__ = ["FedConfig", "simulate", "run_one", "write_results", "RESULTS_FILE"]

RESULTS_FILE = "federated.json"


@dataclass(frozen=True)
class FedConfig:
    """One federated experiment. ``alpha=None`` splits IID; otherwise Dirichlet(alpha)."""

    task: str = "fashion-mnist"
    clients: int = 10
    rounds: int = 20
    fraction: float = 1.0
    alpha: float | None = 0.5
    download: str = "none"
    local_steps: int = 50
    batch: int = 32
    lr: float = 0.1
    hidden: int = 200
    seed: int = 0
    dp_clip: float = 0.0
    dp_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"unknown federated task {self.task!r}; use one of {', '.join(TASKS)}.")
        ints = {"clients": (self.clients, 1, 10000), "rounds": (self.rounds, 1, 100000),
                "local_steps": (self.local_steps, 1, 100000), "batch": (self.batch, 1, 100000),
                "hidden": (self.hidden, 1, 100000)}
        for name, (v, lo, hi) in ints.items():
            if not isinstance(v, int) or not lo <= v <= hi:
                raise UserError(f"--{name.replace('_', '-')} must be a whole number in [{lo}, {hi}]; got {v}.")
        if not 0 < self.fraction <= 1:
            raise UserError(f"--fraction must be in (0, 1]; got {self.fraction}.")
        if self.alpha is not None and not 0 < self.alpha < float("inf"):
            raise UserError(f"--alpha must be a positive number (or 'iid'); got {self.alpha}.")
        if not 0 < self.lr <= 10:
            raise UserError(f"--lr must be in (0, 10]; got {self.lr}.")
        if self.dp_clip < 0 or self.dp_noise < 0 or (self.dp_noise and not self.dp_clip):
            raise UserError("--dp-noise needs a positive --dp-clip (noise is a multiple of it).")
        parse_spec(self.download)

    @property
    def per_round(self) -> int:
        return max(1, int(round(self.fraction * self.clients)))


class _Server:
    """The server's model, what clients hold, and the broadcast log."""

    def __init__(self, x0: np.ndarray, cfg: FedConfig, layout: Layout) -> None:
        self.x, self.held = x0.copy(), x0.copy()
        spec = replace(parse_spec(cfg.download), ef=False, momentum=0.0)  # EF is built in
        self.down = Compressor(spec, layout, seed=cfg.seed, direction=DOWNLOAD)
        self.dense = len(Compressor("none", layout, direction=DOWNLOAD).compress(x0)[0])
        self.sizes: list[int] = []
        self.synced: dict[int, int] = {}

    def broadcast(self, t: int) -> None:
        if t == 0:
            self.sizes.append(0)
            return
        msg, sent = self.down.compress(self.x - self.held, t)
        self.held = self.held + decode_update(msg, self.down.spec, self.down.layout)
        self.sizes.append(len(msg))

    def download_bytes(self, client: int, t: int) -> int:
        last = self.synced.get(client)
        self.synced[client] = t
        return self.dense if last is None else min(self.dense, sum(self.sizes[last + 1:t + 1]))


class _Clients:
    """Every client's data, RNG and compressor; one round of local training and upload."""

    def __init__(self, spec, cfg: FedConfig, data: FedData, parts, layout: Layout) -> None:
        self.spec, self.cfg, self.data, self.parts, self.layout = spec, cfg, data, parts, layout
        self.comps = [Compressor(spec, layout, seed=cfg.seed * 7919 + i) for i in range(cfg.clients)]
        self.rngs = [np.random.default_rng([cfg.seed, i]) for i in range(cfg.clients)]
        self.dp_rng = np.random.default_rng([cfg.seed, 99])

    def upload(self, i: int, held: np.ndarray, t: int) -> tuple[bytes, float]:
        """Client ``i`` trains from ``held``; its message and the seconds encoding took."""
        cfg, idx = self.cfg, self.parts[i]
        new = sgd_steps(self.layout.unflatten(held), self.data.x_train[idx], self.data.y_train[idx],
                        steps=cfg.local_steps, batch=cfg.batch, lr=cfg.lr, rng=self.rngs[i])
        g = self.layout.flatten(new) - held
        if cfg.dp_clip:  # DP first: compression only post-processes the noised update
            g = privatize(g, clip=cfg.dp_clip, noise=cfg.dp_noise, rng=self.dp_rng)
        t0 = time.perf_counter()
        msg, _ = self.comps[i].compress(g, t)
        return msg, time.perf_counter() - t0

    def round(self, chosen, held: np.ndarray, t: int) -> dict[str, Any]:
        """The sample-weighted mean of the decoded updates; refused messages are left out."""
        total, weight, up, enc_s, refused = np.zeros(self.layout.size, np.float64), 0, 0, 0.0, 0
        for i in chosen:
            msg, secs = self.upload(int(i), held, t)
            enc_s += secs
            try:
                update = decode_update(msg, self.spec, self.layout, direction=UPLOAD)
            except WireError:
                refused += 1
                continue
            total += len(self.parts[i]) * update
            weight += len(self.parts[i])
            up += len(msg)
        mean = total / weight if weight else None
        return {"mean": mean, "bytes_up": up, "refused": refused,
                "encode_ms_per_client": 1e3 * enc_s / len(chosen)}


def run_one(spec: str, cfg: FedConfig, data: FedData, parts: list[np.ndarray], *,
            on_round=None) -> dict[str, Any]:
    """Train ``cfg.rounds`` rounds with one upload compressor; returns its per-round records."""
    spec_obj = parse_spec(spec)
    params = init_mlp(data.inputs, cfg.hidden, int(data.y_train.max()) + 1, seed=cfg.seed)
    layout = Layout.of(params)
    server = _Server(layout.flatten(params), cfg, layout)
    clients = _Clients(spec_obj, cfg, data, parts, layout)
    pick = np.random.default_rng([cfg.seed, 7])
    rounds, cum_up, cum_down = [], 0, 0
    for t in range(cfg.rounds):
        t0 = time.perf_counter()
        chosen = np.sort(pick.choice(cfg.clients, cfg.per_round, replace=False))
        server.broadcast(t)
        down = sum(server.download_bytes(int(i), t) for i in chosen)
        res = clients.round(chosen, server.held, t)
        mean = res.pop("mean")
        if mean is not None:
            server.x = (server.x + mean).astype(np.float32)
        cum_up, cum_down = cum_up + res["bytes_up"], cum_down + down
        rounds.append({
            "round": t + 1, "accuracy": accuracy(layout.unflatten(server.x), data.x_test, data.y_test),
            "bytes_up": res["bytes_up"], "bytes_down": down, "cum_up": cum_up, "cum_down": cum_down,
            "clients": len(chosen), "refused": res["refused"], "density": spec_obj.density_at(t),
            "encode_ms_per_client": res["encode_ms_per_client"], "wall_s": time.perf_counter() - t0,
        })
        if on_round:
            on_round(rounds[-1])
    return {"compressor": str(spec_obj), "rounds": rounds, "params": layout.size,
            "initial_accuracy": accuracy(params, data.x_test, data.y_test),
            "layout": [list(sh) for sh in layout.shapes],
            "state_bytes_per_client": clients.comps[0].state_bytes,
            "dense_message_bytes": server.dense}


def write_results(run_dir: Path | None, payload: dict) -> None:
    if run_dir is None:
        return
    from edgeshrink.results import atomic_write_text

    atomic_write_text(Path(run_dir) / RESULTS_FILE, json.dumps(payload, indent=1) + "\n")


def simulate(cfg: FedConfig, compressors: list[str], run_dir: Path | str | None = None, *,
             data: FedData | None = None, on_round=None) -> dict[str, Any]:
    """Run every compressor on the same clients; results go to ``run_dir/federated.json``
    (rewritten atomically after every round) and are returned.
    """
    specs = [str(parse_spec(s)) for s in compressors]  # every spec checked before any work
    data = data or load_task_data(cfg.task)
    parts = split_clients(data.y_train, cfg.clients, alpha=cfg.alpha, seed=cfg.seed)
    payload: dict[str, Any] = {"config": asdict(cfg), "task_samples": {
        "train": len(data.y_train), "test": len(data.y_test),
        "per_client": [len(p) for p in parts]}, "runs": []}
    for spec in specs:
        payload["runs"].append({"compressor": spec, "rounds": []})

        def record(r, _spec=spec):
            payload["runs"][-1]["rounds"].append(r)
            write_results(run_dir, payload)
            if on_round:
                on_round(_spec, r)

        payload["runs"][-1] = run_one(spec, cfg, data, parts, on_round=record)
        write_results(run_dir, payload)
    return payload
