"""The Flower adapter with Flower's own message, record, context and ClientApp types.

Runs where ``flwr`` is installed (``make test-flower`` builds such a venv); skipped elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402

from edgeshrink.federated import Layout, decode_update  # noqa: E402
from edgeshrink.federated.flower import UPDATE_KEY, CompressedFedAvg, compression_mod  # noqa: E402
from edgeshrink.federated.model import init_mlp, sgd_steps  # noqa: E402

SPEC = "topk:0.05+q8+ef"
RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 16)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
NAMES = ("w1", "b1", "w2", "b2")


@pytest.fixture(autouse=True)
def _task_identity():
    """What Flower's ServerApp runtime sets before messages are built (run_serverapp.py)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = None


def _record(params) -> ArrayRecord:
    return ArrayRecord({n: Array(p) for n, p in zip(NAMES, params, strict=True)})


def _client_app() -> ClientApp:
    app = ClientApp(mods=[compression_mod(SPEC, seed=3)])

    @app.train()
    def train(msg: Message, ctxt: Context) -> Message:
        params = list(msg.content["arrays"].to_numpy_ndarrays())
        new = sgd_steps(params, X, Y, steps=5, batch=32, lr=0.5,
                        rng=np.random.default_rng(ctxt.node_id))
        return Message(RecordDict({"arrays": _record(new),
                                   "metrics": MetricRecord({"num-examples": 100 * ctxt.node_id})}),
                       reply_to=msg)

    return app


def _round(app, contexts, arrays, rnd):
    replies = []
    for node, ctxt in contexts.items():
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": rnd})})
        msg = Message(content, dst_node_id=node, message_type=MessageType.TRAIN)
        replies.append(app(msg, ctxt))
    return replies


def _weights(arrays: ArrayRecord) -> list[np.ndarray]:
    return [np.asarray(a) for a in arrays.to_numpy_ndarrays()]


def test_mod_and_strategy_carry_exact_compressed_updates_through_flower_types():
    start = init_mlp(16, 8, 2, seed=0)
    arrays = _record(start)
    layout = Layout.of(start)
    contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={})
                for n in (1, 2)}
    app, strategy = _client_app(), CompressedFedAvg(compressor=SPEC)
    strategy.sent = {n: a for n, a in zip(NAMES, start, strict=True)}
    replies = _round(app, contexts, arrays, 1)
    blobs = [r.content["arrays"][UPDATE_KEY].data for r in replies]
    assert all(len(b) < 0.3 * layout.size * 4 for b in blobs)  # real compressed bytes
    updates = [decode_update(b, SPEC, layout) for b in blobs]
    weights = np.array([100.0, 200.0]) / 300.0
    expected = layout.flatten(start) + sum(w * u for w, u in zip(weights, updates, strict=True))
    got, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(layout.flatten(_weights(got)), expected, rtol=0, atol=1e-6)
    assert strategy.bytes_up[1] == [len(b) for b in blobs] and not strategy.refused
    residual = contexts[1].state["edgeshrink.compressor"]["residual"].numpy()
    assert np.count_nonzero(residual) > 0  # error feedback kept on the node


def test_strategy_refuses_a_truncated_update_and_aggregates_only_the_good_one():
    start = init_mlp(16, 8, 2, seed=0)
    arrays = _record(start)
    contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={})
                for n in (1, 2)}
    replies = _round(_client_app(), contexts, arrays, 1)
    good = decode_update(replies[0].content["arrays"][UPDATE_KEY].data, SPEC, Layout.of(start))
    bad = replies[1].content["arrays"][UPDATE_KEY]
    bad.data = bad.data[:-7]
    strategy = CompressedFedAvg(compressor=SPEC)
    strategy.sent = {n: a for n, a in zip(NAMES, start, strict=True)}
    got, _ = strategy.aggregate_train(1, replies)
    assert len(strategy.refused) == 1 and "truncated" in strategy.refused[0][2]
    layout = Layout.of(start)
    np.testing.assert_allclose(layout.flatten(_weights(got)), layout.flatten(start) + good, atol=1e-6)
