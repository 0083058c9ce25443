"""In-distribution accuracy: each model on its benchmark's clean test split."""
import pytest

pytestmark = pytest.mark.clean


def test_clean(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message
