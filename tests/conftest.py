"""Fixtures shared by the harness's own tests."""
from pathlib import Path

import pytest

from torch_settings import TorchSettings


@pytest.fixture(autouse=True)
def torch_settings_kept(request):
    """Fails a test that leaves torch's process-wide settings changed, after putting them back: a worker left
    at 2 threads beside another worker computed the attack cases 4 threads on 2 cores (make test 35-62 min
    instead of 27). A test that needs other settings restores them itself (tests/test_train_embedded.py)."""
    before = TorchSettings.now()
    yield
    after = TorchSettings.now()
    if after != before:
        before.restore()
        changed = {name: (was, now) for name, was, now in zip(TorchSettings._fields, before, after) if was != now}
        pytest.fail(f"{request.node.nodeid} left torch's process-wide settings changed (was, now): {changed}; "
                    "restore them in the test (tests/torch_settings.py TorchSettings reads and puts them back)",
                    pytrace=False)


@pytest.fixture
def root() -> Path:
    return Path(__file__).resolve().parent.parent
