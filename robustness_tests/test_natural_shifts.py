"""Natural distribution shifts (RoZ's seven, in spirit): v2, sketch, rendition, hard, pose, and two frame-sequence
sets scored pm-0 and pm-k."""
import pytest

pytestmark = pytest.mark.natural


def test_natural_shift(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message
