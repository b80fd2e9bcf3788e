"""Model inputs for a benchmark: generated from the declared shapes and types, or read
from an ``.npz`` file and checked against them.

Axis 0 of an input whose first dimension is dynamic is the batch (``--batch``, default 1);
every other dynamic dimension needs a value from the user (``--dim NAME=N``), as
TensorFlow Lite's ``benchmark_model`` asks for ``--input_layer_shape``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeshrink.bench.session import BenchError

__all__ = [
    "InputSpec",
    "input_specs",
    "parse_dims",
    "resolve_shape",
    "generate_feeds",
    "load_npz_feeds",
    "feeds_batch",
]

# ONNX Runtime's type strings -> numpy dtypes (tensor(bfloat16) has no numpy dtype).
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class InputSpec:
    """One declared model input: ``shape`` holds ints (fixed), strings or None (dynamic)."""

    name: str
    shape: tuple[int | str | None, ...]
    type: str

    @property
    def dtype(self) -> np.dtype:
        if self.type not in _ORT_TYPES:
            raise BenchError(
                f"model input {self.name!r} has type {self.type}, which edgeshrink bench "
                "cannot generate; give its values in an .npz file with --inputs."
            )
        return np.dtype(_ORT_TYPES[self.type])

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "type": self.type}


def input_specs(session) -> list[InputSpec]:
    """The declared inputs of an ``InferenceSession``."""
    return [InputSpec(i.name, tuple(i.shape), i.type) for i in session.get_inputs()]


def parse_dims(items: list[str] | tuple[str, ...] | None) -> dict[str, int]:
    """``["seq=128", "x.2=64"]`` -> ``{"seq": 128, "x.2": 64}``.

    Example:
        >>> parse_dims(["seq=128"])
        {'seq': 128}
    """
    dims: dict[str, int] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit() or int(value) < 1:
            raise BenchError(f"--dim {item!r} must look like NAME=N with a positive integer N.")
        dims[name.strip()] = int(value)
    return dims


def _dynamic_key(spec: InputSpec, axis: int) -> str:
    dim = spec.shape[axis]
    return dim if isinstance(dim, str) and dim else f"{spec.name}.{axis}"


def resolve_shape(spec: InputSpec, *, batch: int | None, dims: dict[str, int]) -> tuple[int, ...]:
    """The concrete shape for ``spec``: fixed dims kept, dynamic ones from ``batch``/``dims``."""
    shape = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim >= 0:
            if axis == 0 and batch is not None and dim != batch:
                raise BenchError(
                    f"model input {spec.name!r} fixes its batch dimension to {dim}; use "
                    f"--batch {dim} or export the model with a dynamic batch dimension."
                )
            shape.append(dim)
            continue
        key = _dynamic_key(spec, axis)
        if key in dims:
            shape.append(dims[key])
        elif axis == 0:
            shape.append(1 if batch is None else batch)
        else:
            raise BenchError(
                f"model input {spec.name!r} has the dynamic dimension {key!r} at axis {axis}; "
                f"give it a value with --dim {key}=N."
            )
    return tuple(shape)


def _check_dims_used(specs: list[InputSpec], dims: dict[str, int]) -> None:
    keys = {
        _dynamic_key(s, a)
        for s in specs
        for a, d in enumerate(s.shape)
        if not (isinstance(d, int) and d >= 0)
    }
    unknown = sorted(set(dims) - keys)
    if unknown:
        known = ", ".join(sorted(keys)) or "none"
        raise BenchError(
            f"--dim {unknown[0]} matches no dynamic dimension of the model "
            f"(its dynamic dimensions: {known})."
        )


MAX_FEED_BYTES = 4 * 2**30  # generated inputs beyond this are a typo in --dim/--batch


def _check_dims_given(specs: list[InputSpec], dims: dict[str, int]) -> None:
    """Name every dynamic dimension (beyond the batch axis) that has no value, at once."""
    missing: dict[str, str] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.shape):
            key = _dynamic_key(spec, axis)
            if axis == 0 or (isinstance(dim, int) and dim >= 0) or key in dims:
                continue
            missing.setdefault(key, f"{key!r} (input {spec.name!r}, axis {axis})")
    if missing:
        how = " ".join(f"--dim {k}=N" for k in missing)
        raise BenchError(f"the model has {len(missing)} dynamic dimension(s) without a value: "
                         f"{', '.join(missing.values())}; give each one with {how}.")


def _check_feed_bytes(specs: list[InputSpec], shapes: dict[str, tuple[int, ...]]) -> None:
    total = 0
    for spec in specs:
        n = 1
        for d in shapes[spec.name]:
            n *= d
        total += n * spec.dtype.itemsize
    if total > MAX_FEED_BYTES:
        raise BenchError(f"the generated inputs would take {total / 2**30:.1f} GiB "
                         f"(shapes {', '.join(f'{k} {list(v)}' for k, v in shapes.items())}); "
                         "give smaller --batch/--dim values.")


def generate_feeds(
    specs: list[InputSpec],
    *,
    batch: int | None = None,
    dims: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Inputs of the declared shapes and types: floats ~ N(0, 1); int8 and uint8 uniform over
    their whole range; wider integers and bools 1.

    8-bit inputs are quantized activations (a full-integer ``.tflite`` takes int8 images),
    so they get values spread as a real input's would be; wider integer inputs are usually
    indices (token ids, masks), for which 1 is always in range. Give real values with an
    .npz file where the values change the work done.

    Example:
        >>> feeds = generate_feeds([InputSpec("x", ("N", 3), "tensor(float)")], batch=4)
        >>> feeds["x"].shape
        (4, 3)
    """
    if batch is not None and batch < 1:
        raise BenchError(f"--batch must be >= 1, got {batch}.")
    dims = dims or {}
    _check_dims_used(specs, dims)
    _check_dims_given(specs, dims)
    shapes = {s.name: resolve_shape(s, batch=batch, dims=dims) for s in specs}
    _check_feed_bytes(specs, shapes)
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape, dtype = shapes[spec.name], spec.dtype
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        elif dtype in (np.int8, np.uint8):
            info = np.iinfo(dtype)
            feeds[spec.name] = rng.integers(info.min, info.max, shape, dtype=dtype,
                                            endpoint=True)
        else:
            feeds[spec.name] = np.ones(shape, dtype=dtype)
    return feeds


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise BenchError(f"inputs file {path} does not exist; give an .npz made by np.savez.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled arrays), OSError
        raise BenchError(
            f"{path} is not a readable .npz file ({exc}); write it with np.savez."
        ) from None


def _match_names(arrays: dict[str, np.ndarray], specs: list[InputSpec], path: Path) -> dict:
    names = [s.name for s in specs]
    positional = [f"arr_{i}" for i in range(len(specs))]
    if sorted(arrays) == sorted(positional) and not set(names) & set(arrays):
        # np.savez(path, a, b) without keywords: take the arrays in input order.
        return {n: arrays[p] for n, p in zip(names, positional, strict=True)}
    for name in names:
        if name not in arrays:
            raise BenchError(
                f"{path} has no array for model input {name!r} (it has: "
                f"{', '.join(sorted(arrays)) or 'nothing'}); save it with np.savez(file, "
                f"{name}=array)."
            )
    extra = sorted(set(arrays) - set(names))
    if extra:
        raise BenchError(
            f"array {extra[0]!r} in {path} matches no model input (the inputs are: "
            f"{', '.join(names)})."
        )
    return {n: arrays[n] for n in names}


def _check_array(spec: InputSpec, arr: np.ndarray, path: Path, batch: int | None) -> None:
    where = f"array {spec.name!r} in {path}"
    if arr.dtype != spec.dtype:
        raise BenchError(
            f"{where} is {arr.dtype} but the model input is {spec.dtype}; save it with "
            f".astype(np.{spec.dtype})."
        )
    if arr.ndim != len(spec.shape):
        raise BenchError(
            f"{where} has shape {arr.shape} but the model input has {len(spec.shape)} "
            f"dimensions {list(spec.shape)}."
        )
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim >= 0 and arr.shape[axis] != dim:
            raise BenchError(
                f"{where} has shape {arr.shape} but the model input needs {dim} at axis "
                f"{axis} (declared shape {list(spec.shape)})."
            )
    if batch is not None and arr.ndim and arr.shape[0] != batch:
        raise BenchError(f"{where} has batch {arr.shape[0]} but --batch is {batch}.")


def load_npz_feeds(
    path: str | os.PathLike, specs: list[InputSpec], *, batch: int | None = None
) -> dict[str, np.ndarray]:
    """Read an .npz and check it against the model's inputs (names, dtypes, fixed dims).

    Arrays are matched by input name; an .npz written without keywords (``arr_0``, ...) is
    taken in input order.

    Example:
        >>> feeds = load_npz_feeds("inputs.npz", input_specs(sess))  # doctest: +SKIP
    """
    path = Path(path)
    arrays = _match_names(_open_npz(path), specs, path)
    for spec in specs:
        _check_array(spec, arrays[spec.name], path, batch)
    return arrays


def feeds_batch(feeds: dict[str, np.ndarray]) -> int:
    """The batch of a feed dict: axis 0 of its first non-scalar input (1 if none)."""
    for arr in feeds.values():
        if arr.ndim:
            return int(arr.shape[0])
    return 1
