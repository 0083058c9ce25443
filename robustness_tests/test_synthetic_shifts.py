"""Synthetic shifts: ImageNet-C corruptions at severities 1-5, reproducible per seed."""
import pytest

pytestmark = pytest.mark.synthetic


def test_corruption(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message
