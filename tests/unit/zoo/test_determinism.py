"""Zoo baselines train to bitwise the same weights whatever the caller's thread count."""

from __future__ import annotations

import pytest
import torch


def _trained(tmp_path, monkeypatch, threads: int) -> dict[str, torch.Tensor]:
    from edgeshrink.zoo.tasks_mnist import lenet5_digits

    monkeypatch.setenv("EDGESHRINK_CACHE", str(tmp_path / f"cache{threads}"))
    monkeypatch.setattr("edgeshrink.zoo.cache.SHIPPED", tmp_path / "none")  # really train
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = lenet5_digits().model
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before  # the training regime is restored after
    return model.state_dict()


def test_lenet5_digits_weights_do_not_depend_on_the_thread_count(tmp_path, monkeypatch):
    one, two = _trained(tmp_path, monkeypatch, 1), _trained(tmp_path, monkeypatch, 2)
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("name", ["lenet5-digits", "lenet5-mnist", "lenet300-mnist",
                                  "resnet20-mnist", "vit-mnist"])
def test_a_fresh_machine_loads_the_shipped_baseline_instead_of_training(name, tmp_path,
                                                                        monkeypatch):
    """Every trained zoo baseline ships as weights: an empty cache trains nothing, so the
    baselines (and every figure measured from them) are the same on any CPU."""
    from edgeshrink.task import load_task
    from edgeshrink.zoo import cache

    monkeypatch.setenv("EDGESHRINK_CACHE", str(tmp_path))

    def no_training():
        raise AssertionError(f"{name} was trained although the package should ship it")

    monkeypatch.setattr(cache, "deterministic_training", no_training)
    model = load_task(f"zoo:{name}").model
    shipped = [p for p in cache.SHIPPED.glob("*.pt") if p.name.startswith(name + "-")]
    assert len(shipped) == 1, shipped
    state = torch.load(shipped[0], weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert not list(tmp_path.rglob("*.pt"))  # nothing trained into the cache
