"""Regenerate tiny.tflite and tiny.pte (a 3x8x8 -> 5 conv net, seeded) for the bench tests:
the tests read these files so that they need only the runtimes, not the converters (whose
imports alone took ~40 s each on a 2-core machine).

    PYTHONPATH=src python tests/unit/bench/data/make_tiny_runtimes.py
"""

from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def tiny_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5)).eval()
    return model, (torch.randn(1, 3, 8, 8),)


def main() -> None:
    import litert_torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model, example = tiny_model()
    litert_torch.convert(model, example).export(str(HERE / "tiny.tflite"))
    prog = to_edge_transform_and_lower(torch.export.export(model, example),
                                       partitioner=[XnnpackPartitioner()]).to_executorch()
    (HERE / "tiny.pte").write_bytes(prog.buffer)


if __name__ == "__main__":
    main()
