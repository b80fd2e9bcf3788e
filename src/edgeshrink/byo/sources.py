"""Read a user's data: an ``.npz``, a folder of images (one sub-folder per class), or a CSV.

========================  =================================================================
``data.npz``              inputs under ``x`` (or ``inputs``, ``X``, ``data``); labels, if
                          any, under ``y`` (or ``labels``, ``targets``). A model with several
                          inputs: ``x0``, ``x1``, ... in order.
``images/CLASS/*.png``    one sub-folder per class (sorted names are labels 0, 1, ...);
                          ``--input-size`` resizes, ``--mean``/``--std`` normalise the
                          0..1 pixels per channel; grey images stay 1 channel unless the
                          folder holds colour ones (then all become RGB).
``table.csv``             a header row; every column is a feature except the label column
                          (``label``, ``target``, ``y`` or ``class`` if present).
========================  =================================================================

Example:
    >>> inputs, labels = read_data("digits.npz")  # doctest: +SKIP
    >>> inputs[0].shape, labels.shape  # doctest: +SKIP
    ((1797, 1, 8, 8), (1797,))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["DataOptions", "read_data", "INPUT_KEYS", "LABEL_KEYS", "LABEL_COLUMNS"]

INPUT_KEYS = ("x", "inputs", "X", "data")
LABEL_KEYS = ("y", "labels", "targets")
LABEL_COLUMNS = ("label", "target", "y", "class")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DataOptions:
    """How to read images and tables (``--input-size``, ``--mean``, ``--std``,
    ``--label-column``)."""

    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    label_column: str | None = None


def read_data(path: Path | str, opts: DataOptions = DataOptions()
              ) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    """``(inputs, labels or None)`` from ``path``; inputs are float32 unless integer ids."""
    path = Path(path)
    if path.is_dir():
        return _images(path, opts)
    if not path.is_file():
        raise UserError(f"data {path} does not exist.")
    if path.suffix == ".npz":
        return _npz(path)
    if path.suffix == ".csv":
        return _csv(path, opts.label_column)
    raise UserError(f"data {path} must be an .npz, a .csv, or a folder with one "
                    "sub-folder of images per class.")


def _npz(path: Path) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except Exception as exc:
        raise UserError(f"{path} is not a readable .npz ({type(exc).__name__}).") from None
    key = next((k for k in INPUT_KEYS if k in arrays), None)
    if key is not None:
        inputs = (arrays[key],)
    elif "x0" in arrays:
        inputs = tuple(arrays[f"x{i}"] for i in range(len(arrays)) if f"x{i}" in arrays)
    else:
        raise UserError(f"{path} holds {', '.join(sorted(arrays)) or 'nothing'}; put the inputs "
                        f"under 'x' (labels, if any, under 'y').")
    label_key = next((k for k in LABEL_KEYS if k in arrays), None)
    labels = arrays[label_key] if label_key else None
    return tuple(_as_input(a) for a in inputs), labels


def _as_input(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind in "iu" and arr.ndim == 2:
        return arr.astype(np.int64, copy=False)  # token ids
    return arr.astype(np.float32)


def _csv(path: Path, label_column: str | None) -> tuple[tuple[np.ndarray, ...], np.ndarray | None]:
    import csv

    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise UserError(f"{path} needs a header row and at least one data row.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if label_column and label_column not in header:
        raise UserError(f"{path} has no column {label_column!r}; columns: {', '.join(header)}.")
    label = label_column or next((c for c in LABEL_COLUMNS if c in header), None)
    try:
        table = np.array([[float(v) for v in r] for r in body if r], dtype=np.float64)
    except ValueError as exc:
        raise UserError(f"{path} holds a value that is not a number ({exc}).") from None
    if label is None:
        return (table.astype(np.float32),), None
    j = header.index(label)
    features = np.delete(table, j, axis=1).astype(np.float32)
    labels = table[:, j]
    if np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    return (features,), labels


def _images(root: Path, opts: DataOptions) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"{root} holds no images in class sub-folders (e.g. {root}/cat/1.png).")
    images = [Image.open(f) for f, _ in files]
    mode = "L" if all(im.mode in ("L", "1", "I", "I;16") for im in images) else "RGB"
    size = (opts.input_size[1], opts.input_size[0]) if opts.input_size else images[0].size
    arrays = []
    for (f, _), im in zip(files, images, strict=True):
        im = im.convert(mode)
        if im.size != size:
            if opts.input_size is None:
                raise UserError(f"{f} is {im.size[0]}x{im.size[1]} but {files[0][0]} is "
                                f"{size[0]}x{size[1]}; give --input-size H,W to resize them.")
            im = im.resize(size, Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # NCHW
    x = _normalise(x, opts)
    return (np.ascontiguousarray(x, dtype=np.float32),), np.array([c for _, c in files])


def _normalise(x: np.ndarray, opts: DataOptions) -> np.ndarray:
    channels = x.shape[1]
    for name, values in (("--mean", opts.mean), ("--std", opts.std)):
        if values is not None and len(values) not in (1, channels):
            raise UserError(f"{name} has {len(values)} values for images of {channels} "
                            f"channel(s); give 1 or {channels}.")
    if opts.std is not None and min(opts.std) <= 0:
        raise UserError("--std values must be positive.")
    mean = np.array(opts.mean or (0.0,), np.float32).reshape(1, -1, 1, 1)
    std = np.array(opts.std or (1.0,), np.float32).reshape(1, -1, 1, 1)
    return (x - mean) / std
