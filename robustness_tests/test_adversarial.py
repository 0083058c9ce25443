"""White-box adversarial attacks with budgets in pixel units; each batch is checked to stay within its budget."""
import pytest

pytestmark = pytest.mark.adversarial


def test_attack(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message
