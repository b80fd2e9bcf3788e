"""Each foundation transform on a tiny model: real zeros, real smaller files, ORT agrees."""

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import ExportMismatch, export_onnx, ort_session, run_onnx
from edgeshrink.measure.artifact import file_sizes
from edgeshrink.measure.model_stats import count_macs, count_params, weight_sparsity
from edgeshrink.prune import UnstructuredConfig, prune
from edgeshrink.prune.unstructured import magnitude_mask
from edgeshrink.quant import DynamicInt8Config, Fp16Config, StaticInt8Config, quantize
from edgeshrink.train import FinetuneConfig, fit


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 64),
        nn.ReLU(), nn.Linear(64, 10),
    ).eval()


def tiny_data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    return Dataset((x,), rng.integers(0, 10, n))


def test_magnitude_mask_drops_exactly_the_smallest():
    scores = torch.tensor([[0.5, -3.0], [0.1, 2.0]]).abs()
    assert magnitude_mask(scores, 0.5).tolist() == [[False, True], [False, True]]
    assert magnitude_mask(scores, 0.0).all()


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_pruning_zeroes_the_requested_fraction(scope):
    model = prune(tiny_model(), UnstructuredConfig(sparsity=0.8, scope=scope))
    assert weight_sparsity(model) == pytest.approx(0.8, abs=1e-3)
    if scope == "layer":
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                assert float((m.weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)


def test_global_magnitude_keeps_the_largest_weights_overall():
    model = tiny_model()
    weights = torch.cat([m.weight.detach().abs().flatten() for m in model.modules()
                         if isinstance(m, nn.Conv2d | nn.Linear)])
    threshold = weights.sort().values[int(0.7 * weights.numel())]
    model = prune(model, UnstructuredConfig(sparsity=0.7))
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            kept = m.weight.detach().abs()[m.weight != 0]
            assert bool((kept >= threshold - 1e-7).all())


def test_random_criterion_differs_from_magnitude():
    a = prune(tiny_model(), UnstructuredConfig(sparsity=0.5))
    b = prune(tiny_model(), UnstructuredConfig(sparsity=0.5, criterion="random"))
    assert not torch.equal(a[3].weight == 0, b[3].weight == 0)
    assert weight_sparsity(b) == pytest.approx(0.5, abs=1e-3)


def test_finetune_keeps_pruned_weights_at_zero_and_learns():
    model = prune(tiny_model(), UnstructuredConfig(sparsity=0.9))
    data = tiny_data(128)
    before = nn.functional.cross_entropy(model(torch.from_numpy(data.inputs[0])),
                                         torch.from_numpy(data.targets)).item()
    fit(model, FinetuneConfig(epochs=5, lr=1e-2), data)
    after = nn.functional.cross_entropy(model(torch.from_numpy(data.inputs[0])),
                                        torch.from_numpy(data.targets)).item()
    assert weight_sparsity(model) >= 0.9 - 1e-3
    assert after < before


def test_distillation_moves_student_towards_teacher():
    teacher, student = tiny_model(), prune(tiny_model(), UnstructuredConfig(sparsity=0.9))
    data = tiny_data(128)
    x = torch.from_numpy(data.inputs[0])

    def gap():
        with torch.no_grad():
            return (student(x).softmax(1) - teacher(x).softmax(1)).abs().mean().item()

    start = gap()
    fit(student, FinetuneConfig(epochs=10, lr=5e-3, distill=1.0), data, teacher=teacher)
    assert gap() < start


def test_export_matches_pytorch_and_pruned_file_compresses_better(tmp_path):
    model = tiny_model()
    x = (torch.from_numpy(tiny_data(4).inputs[0]),)
    dense = export_onnx(model, x, tmp_path / "dense.onnx")
    sparse = export_onnx(prune(tiny_model(), UnstructuredConfig(sparsity=0.9)), x,
                         tmp_path / "sparse.onnx")
    got = run_onnx(ort_session(dense), (x[0].numpy(),))
    np.testing.assert_allclose(got, model(x[0]).detach().numpy(), atol=1e-5)
    (d_raw, d_zip), (s_raw, s_zip) = file_sizes(dense), file_sizes(sparse)
    assert abs(d_raw - s_raw) < 64  # same dense layout on disk
    assert s_zip < 0.35 * d_zip  # zeros pay off after deflate


def test_export_self_check_catches_a_mismatch(tmp_path, monkeypatch):
    import edgeshrink.export as ex

    monkeypatch.setattr(ex, "run_onnx", lambda s, i: np.zeros((1, 10), np.float32) + 7)
    with pytest.raises(ExportMismatch):
        export_onnx(tiny_model(), (torch.zeros(1, 1, 8, 8),), tmp_path / "m.onnx")


@pytest.mark.parametrize(
    ("cfg", "max_ratio"),
    [(StaticInt8Config(), 0.35), (DynamicInt8Config(), 0.4), (Fp16Config(), 0.6)],
)
def test_quantized_artifacts_are_smaller_and_agree_with_pytorch(tmp_path, cfg, max_ratio):
    model, data = tiny_model(), tiny_data(256)
    fp32 = export_onnx(model, (torch.from_numpy(data.inputs[0][:1]),), tmp_path / "fp32.onnx")
    art = quantize(model, cfg, data, workdir=tmp_path, name="q")
    assert art.path.stat().st_size < max_ratio * fp32.stat().st_size
    got = run_onnx(ort_session(art.path), data.inputs)
    ref = model(torch.from_numpy(data.inputs[0])).detach().numpy()
    assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.95
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


def test_calibration_of_the_wrong_shape_is_a_user_error(tmp_path):
    model = tiny_model()
    wrong = Dataset((np.zeros((4, 1, 9, 9), np.float32),), np.zeros(4, np.int64))
    from edgeshrink.task import Task
    from edgeshrink.transforms import TransformContext, apply_recipe

    task = Task("t", model, None, wrong, tiny_data(8))
    with pytest.raises(UserError, match="calibration data has samples of shape"):
        apply_recipe([StaticInt8Config()], TransformContext(task=task, workdir=tmp_path))


def test_model_stats():
    model = tiny_model()
    macs, act = count_macs(model, (torch.zeros(1, 1, 8, 8),))
    assert macs == 8 * 9 * 64 + 512 * 64 + 64 * 10
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    assert act > 0


def test_encoded_size_of_a_pruned_file_beats_deflate_and_decodes_exactly(tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgeshrink.encode import decode, encode
    from edgeshrink.measure.artifact import encoded_file_size

    model = prune(tiny_model(), UnstructuredConfig(sparsity=0.9))
    path = export_onnx(model, (torch.zeros(1, 1, 8, 8),), tmp_path / "p.onnx")
    raw, deflated = file_sizes(path)
    assert encoded_file_size(path) < deflated < raw
    arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    back = decode(encode(arrays))
    assert all(np.array_equal(back[k], v) for k, v in arrays.items())


def test_fit_on_logit_targets_distils_from_them():
    """An unlabelled split whose targets are a teacher's logits (the pretrained zoo tasks)
    trains by distillation: the student moves towards the teacher's outputs."""
    import numpy as np
    import torch
    from torch import nn

    from edgeshrink.data import Dataset
    from edgeshrink.train import FinetuneConfig, fit

    torch.manual_seed(0)
    teacher, student = nn.Linear(8, 5), nn.Linear(8, 5)
    x = np.random.default_rng(0).standard_normal((256, 8)).astype(np.float32)
    with torch.no_grad():
        logits = teacher(torch.from_numpy(x)).numpy()
    data = Dataset((x,), logits)

    def gap() -> float:
        with torch.no_grad():
            out = student(torch.from_numpy(x))
        return float(torch.nn.functional.kl_div(out.log_softmax(1), torch.from_numpy(logits)
                                                .log_softmax(1), reduction="batchmean",
                                                log_target=True))

    before = gap()
    fit(student, FinetuneConfig(epochs=20, lr=1e-2, batch_size=32), data)
    assert gap() < 0.2 * before


def test_a_finetune_step_reports_each_epoch_to_the_study(tmp_path):
    """The study's progress and log show fine-tuning epoch by epoch (issue #16)."""
    from types import SimpleNamespace

    from edgeshrink.transforms import HANDLERS, TransformContext, load_handlers

    steps: list[str] = []
    task = SimpleNamespace(train=tiny_data(), loss_fn=None)
    ctx = TransformContext(task=task, workdir=tmp_path, on_step=steps.append)
    load_handlers()
    HANDLERS[FinetuneConfig](FinetuneConfig(epochs=3, lr=1e-2), tiny_model(), ctx)
    assert [s for s in steps if s.startswith("finetune epoch")] == [
        "finetune epoch 1/3", "finetune epoch 2/3", "finetune epoch 3/3"]
