import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two shared cores: torch's default thread pool only adds contention for tiny models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
