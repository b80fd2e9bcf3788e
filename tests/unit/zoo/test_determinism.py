"""Zoo baselines train to bitwise the same weights whatever the caller's thread count."""

from __future__ import annotations

import torch


def _trained(tmp_path, monkeypatch, threads: int) -> dict[str, torch.Tensor]:
    from edgeshrink.zoo.tasks_mnist import lenet5_digits

    monkeypatch.setenv("EDGESHRINK_CACHE", str(tmp_path / f"cache{threads}"))
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
