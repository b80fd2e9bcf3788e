"""Flower adapter: the same compressors in a real Flower (``flwr`` 1.42) deployment.

Client side, :func:`compression_mod` is a Flower *mod*: it lets the ClientApp train, turns
the reply's weights into the update (new - received), compresses it with a stateful
:class:`~edgeshrink.federated.compress.Compressor` whose state (error-feedback residual,
DGC velocity, PowerSGD's Q) lives in the node's ``Context.state``, and replies with one
``Array`` holding the message bytes (``stype="edgeshrink.update"``, no npy header).

Server side, :class:`CompressedFedAvg` is Flower's ``FedAvg`` that decodes every reply
before aggregating: the decoded update is added to the weights it sent, so FedAvg's
weighted mean of weights is the weighted mean of updates. A reply that does not decode
(truncated, corrupted, another compressor or model) is logged and left out, never applied.
Mix :class:`DecodeUpdates` into another strategy (FedAvgM, FedProx...) the same way.

Only uploads are compressed here: Flower sends one broadcast record to every sampled node,
and a node that missed rounds cannot apply a compressed change (the simulation models that).

Example::

    app = ClientApp(mods=[compression_mod("topk:0.01+ef")])
    strategy = CompressedFedAvg(compressor="topk:0.01+ef", fraction_train=1.0)
"""

from __future__ import annotations

from logging import WARNING

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MessageType
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg

from edgeshrink.federated.bits import WireError
from edgeshrink.federated.compress import UPLOAD, Compressor, Layout, decode_update
from edgeshrink.federated.spec import CompressorSpec, parse_spec

__all__ = ["compression_mod", "DecodeUpdates", "CompressedFedAvg", "UPDATE_KEY", "STYPE"]

UPDATE_KEY = "edgeshrink.update"
STYPE = "edgeshrink.update"
STATE_KEY = "edgeshrink.compressor"


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: np.asarray(arr.numpy(), np.float32) for name, arr in record.items()}


def _restore(ctxt: Context, spec: CompressorSpec, layout: Layout, seed: list[int]) -> Compressor:
    comp = Compressor(spec, layout, seed=0)
    comp.rng = np.random.default_rng(seed)
    saved = ctxt.state.array_records.get(STATE_KEY)
    if saved is None or "fingerprint" not in saved:
        return comp
    if int(saved["fingerprint"].numpy()[0]) == layout.fingerprint:  # else: a new model, fresh state
        comp.residual = saved["residual"].numpy().copy() if "residual" in saved else comp.residual
        comp.velocity = saved["velocity"].numpy().copy() if "velocity" in saved else comp.velocity
        comp.q = {int(k[2:]): v.numpy().copy() for k, v in saved.items() if k.startswith("q.")}
    return comp


def _save(ctxt: Context, comp: Compressor) -> None:
    arrays = {"fingerprint": Array(np.array([comp.layout.fingerprint], np.int64))}
    if comp.residual is not None:
        arrays["residual"] = Array(comp.residual)
    if comp.velocity is not None:
        arrays["velocity"] = Array(comp.velocity)
    arrays.update({f"q.{i}": Array(q) for i, q in comp.q.items()})
    ctxt.state[STATE_KEY] = ArrayRecord(arrays)


def compression_mod(spec: str | CompressorSpec, *, seed: int = 0, arrays_key: str = "arrays",
                    config_key: str = "config"):
    """A Flower client mod that compresses the update of every TRAIN reply with ``spec``."""
    spec = parse_spec(spec)

    def mod(msg: Message, ctxt: Context, call_next) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        start = _numpy(msg.content[arrays_key])
        reply = call_next(msg, ctxt)
        if reply.has_error():
            return reply
        if arrays_key not in reply.content.array_records:
            return reply  # nothing to compress; the server refuses a reply without an update
        new = _numpy(reply.content[arrays_key])
        if set(new) != set(start):
            raise ValueError(f"the ClientApp replied with arrays {sorted(new)}, it received "
                             f"{sorted(start)}: compression needs the same names.")
        layout = Layout.of(start.values())
        config = msg.content.config_records.get(config_key) or {}
        rnd = int(config.get("server-round", 0))
        comp = _restore(ctxt, spec, layout, [seed, ctxt.node_id, rnd])
        update = layout.flatten([new[k] for k in start]) - layout.flatten(start.values())
        blob, _ = comp.compress(update, rnd)
        _save(ctxt, comp)
        reply.content[arrays_key] = ArrayRecord(
            {UPDATE_KEY: Array(dtype="uint8", shape=(len(blob),), stype=STYPE, data=blob)})
        return reply

    return mod


class DecodeUpdates:
    """Strategy mixin: decode compressed replies into weights before the base aggregation.

    Attributes:
        bytes_up: bytes of every accepted update message, per round.
        refused: ``(round, node id, reason)`` of every message refused.
    """

    def __init__(self, *args, compressor: str | CompressorSpec, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spec = parse_spec(compressor)
        self.sent: dict[str, np.ndarray] = {}
        self.bytes_up: dict[int, list[int]] = {}
        self.refused: list[tuple[int, int, str]] = []

    def configure_train(self, server_round, arrays, config, grid):
        self.sent = _numpy(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def _decode(self, msg: Message) -> int:
        record = msg.content.array_records.get(self.arrayrecord_key)
        if record is None or UPDATE_KEY not in record or record[UPDATE_KEY].stype != STYPE:
            raise WireError("reply carries no edgeshrink update message.")
        blob = record[UPDATE_KEY].data
        layout = Layout.of(self.sent.values())
        update = layout.unflatten(decode_update(blob, self.spec, layout, direction=UPLOAD))
        msg.content[self.arrayrecord_key] = ArrayRecord(
            {name: Array(base + u) for (name, base), u in zip(self.sent.items(), update, strict=True)})
        return len(blob)

    def aggregate_train(self, server_round, replies):
        kept = []
        for msg in replies:
            if not msg.has_error():
                try:
                    self.bytes_up.setdefault(server_round, []).append(self._decode(msg))
                except WireError as exc:
                    node = msg.metadata.src_node_id
                    log(WARNING, "refused the update of node %s: %s", node, exc)
                    self.refused.append((server_round, node, str(exc)))
                    continue
            kept.append(msg)
        return super().aggregate_train(server_round, kept)


class CompressedFedAvg(DecodeUpdates, FedAvg):
    """Flower's FedAvg over compressed updates: ``CompressedFedAvg(compressor="q8", ...)``."""
