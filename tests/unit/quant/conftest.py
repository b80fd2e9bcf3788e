from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    from _tiny import tiny_task

    return tiny_task()
