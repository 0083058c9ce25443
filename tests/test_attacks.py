import pytest
import torch

from harness.attacks import AttackValidityError, attack_batch, check_adversarial, parse_attack


def test_parse_fraction_and_decimal_budgets():
    spec = parse_attack("pgd-linf-0.5/255")
    assert spec.eps == pytest.approx(0.5 / 255)
    assert spec.steps == 10 and spec.alpha == pytest.approx(spec.eps / 4)
    assert spec.name == "pgd-linf-0.5/255"
    assert parse_attack("fgsm-linf-0.01").eps == pytest.approx(0.01)


@pytest.mark.parametrize("text, message", [
    ("pgd-linf", "not of the form"),
    ("nope-linf-1/255", "unknown attack"),
    ("fgsm-l2-1/255", "unknown attack"),
    ("pgd-linf-x/255", "not a number"),
    ("pgd-linf-2", r"must be in \(0, 1\]"),
])
def test_bad_attack_specs_are_explained(text, message):
    with pytest.raises(ValueError, match=message):
        parse_attack(text)


def test_validity_check_fires_outside_the_ball_and_outside_pixel_range():
    spec = parse_attack("pgd-linf-1/255")
    clean = torch.full((2, 3, 4, 4), 0.5)
    check_adversarial(clean, clean + spec.eps, spec)
    with pytest.raises(AttackValidityError, match="exceeds eps"):
        check_adversarial(clean, clean + 2 * spec.eps, spec)
    with pytest.raises(AttackValidityError, match="leave"):
        check_adversarial(torch.ones(1, 3, 2, 2), torch.ones(1, 3, 2, 2) + 1e-3, spec)


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.layer(x.flatten(1))


def test_pgd_is_seeded_and_stays_in_budget():
    model = _Linear().eval()
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    spec = parse_attack("pgd-linf-4/255")
    first = attack_batch(model, images, labels, spec, seed=7)
    again = attack_batch(model, images, labels, spec, seed=7)
    other = attack_batch(model, images, labels, spec, seed=8)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert (first - images).abs().max() <= spec.eps + 1e-6
    assert not torch.equal(first, images)
