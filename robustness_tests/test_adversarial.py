"""Adversarial attacks with budgets in pixel units (white-box, black-box, decision-based, transfer, AutoAttack's
worst case), minimal perturbations, the canary, and typographic attacks.

Every attack batch is checked for validity (see harness.attacks). Every model of the run gets the canary case
`canary-<attack>` (`[tool.robustness.adversarial] canary`): an undefended model must collapse under its large
budget, or the case fails as gradient masking. The controller also fails the run when a black-box attack beats
a white-box one at the same budget (harness.checks).
"""
import pytest

pytestmark = pytest.mark.adversarial


def test_attack(case, gate):
    decision = gate(case)
    assert decision.ok, decision.message
