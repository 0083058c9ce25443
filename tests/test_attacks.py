import dataclasses

import pytest
import torch

from harness.attacks import (ATTACKS, AttackValidityError, check_adversarial, known_attacks, parse_attack,
                             register_attack, run_attack)


def test_parse_fraction_and_decimal_budgets():
    spec = parse_attack("pgd-linf-0.5/255")
    assert spec.eps == pytest.approx(0.5 / 255)
    assert spec.steps == 10 and spec.alpha == pytest.approx(spec.eps / 4)
    assert spec.name == "pgd-linf-0.5/255"
    assert parse_attack("apgd-ce-l2-0.5").eps == pytest.approx(0.5)
    assert parse_attack("cw-l2-0.1").minimum_norm and not parse_attack("square-linf-1/255").white_box


def test_at_least_eleven_attack_types_are_registered():
    assert len(ATTACKS) >= 11
    assert {"fgsm-linf", "bim-linf", "pgd-linf", "pgd-l2", "mim-linf", "dim-linf", "cw-l2", "deepfool-l2",
            "apgd-ce-linf", "fab-linf", "square-linf", "spsa-linf"} <= set(known_attacks())


@pytest.mark.parametrize("text, message", [
    ("pgdlinf", "not of the form"),
    ("nope-linf-1/255", "unknown attack"),
    ("fgsm-l2-1/255", "unknown attack"),
    ("pgd-linf-x/255", "not a number"),
    ("pgd-linf-2", r"must be in \(0, 1\]"),
])
def test_bad_attack_specs_are_explained(text, message):
    with pytest.raises(ValueError, match=message):
        parse_attack(text)


def test_the_budget_range_named_is_the_one_of_the_norm():
    assert parse_attack("pgd-l2-100").eps == 100 and parse_attack("pgd-linf-1").eps == 1
    with pytest.raises(ValueError, match=r"eps must be in \(0, 100\] pixel units for l2, got 100.5"):
        parse_attack("pgd-l2-100.5")
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\] pixel units for linf, got 2.0"):
        parse_attack("pgd-linf-2")
    with pytest.raises(ValueError, match=r"\(0, 100\] pixel units for l2, got 0.0"):
        parse_attack("cw-l2-0")


class Linear(torch.nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.layer = torch.nn.Linear(3 * 8 * 8, classes)
        torch.nn.init.normal_(self.layer.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.layer(x.flatten(1))


@pytest.fixture
def batch():
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    model = Linear().eval().requires_grad_(False)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every sample correct clean
    return model, images, labels


def test_pgd_is_seeded_stays_in_budget_and_bites(batch):
    model, images, labels = batch
    spec = parse_attack("pgd-linf-16/255")
    first = run_attack(model, images, labels, spec, seed=7)
    again = run_attack(model, images, labels, spec, seed=7)
    other = run_attack(model, images, labels, spec, seed=8)
    assert torch.equal(first.adversarial, again.adversarial)
    assert not torch.equal(first.adversarial, other.adversarial)
    assert first.norms.max() <= spec.eps + 1e-6
    assert first.robust.sum() < first.clean_correct.sum()


@pytest.mark.parametrize("name", ["pgd-linf-16/255", "square-linf-16/255", "apgd-ce-l2-0.5"])
def test_the_callers_global_rng_is_left_as_it_was(batch, name):
    """run_attack seeds torch's global generator for the attack (square and apgd re-seed it themselves too) and
    puts the caller's state back afterwards."""
    model, images, labels = batch
    torch.manual_seed(2024)
    torch.rand(3)
    state = torch.get_rng_state()
    run_attack(model, images, labels, parse_attack(name), seed=7)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ["pgd-linf-16/255", "pgd-l2-0.5", "square-linf-16/255", "dim-linf-16/255"])
def test_the_adversarials_are_those_of_a_global_seed_whatever_the_callers_rng(batch, name):
    """The attack's draws are exactly those it made when run_attack called torch.manual_seed(seed) and left the
    global generator there: the same adversarial images as before the generator was forked, bit for bit."""
    model, images, labels = batch  # every sample correct clean, so every one is attacked
    spec = parse_attack(name)
    attack = ATTACKS[spec.attack].build(model, spec, 4, 7)
    torch.manual_seed(7)
    expected = attack(images, labels).detach()
    outcomes = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        outcomes.append(run_attack(model, images, labels, spec, seed=7).adversarial)
    assert torch.equal(outcomes[0], expected) and torch.equal(outcomes[1], expected)


def test_only_correctly_classified_images_are_attacked(batch):
    model, images, labels = batch
    labels = labels.clone()
    labels[::4] = (labels[::4] + 1) % 4  # every fourth sample now misclassified clean
    seen = []
    pgd = ATTACKS.unregister("pgd")
    ATTACKS.add("pgd", dataclasses.replace(pgd, build=lambda *a: _Recording(pgd.build(*a), seen)))
    try:
        outcome = run_attack(model, images, labels, parse_attack("pgd-linf-16/255"), seed=0)
    finally:
        ATTACKS.unregister("pgd")
        ATTACKS.add("pgd", pgd)
    assert seen == [12]
    assert torch.equal(outcome.clean_correct, torch.arange(16) % 4 != 0)
    assert torch.equal(outcome.adversarial[::4], images[::4]) and not outcome.norms[::4].any()
    assert not outcome.robust[::4].any()
    assert outcome.norms[outcome.clean_correct].min() > 0 and outcome.robust.sum() < 12


class _Recording:
    """Wraps a torchattacks-like object and records the batch sizes it was called with."""

    def __init__(self, inner, seen):
        self.inner, self.seen = inner, seen

    def __call__(self, images, labels):
        self.seen.append(len(images))
        return self.inner(images, labels)


@pytest.mark.parametrize("name", ["fgsm-linf-8/255", "bim-linf-8/255", "pgd-l2-0.5", "mim-linf-8/255",
                                  "dim-linf-8/255", "apgd-ce-linf-8/255", "apgd-dlr-linf-8/255", "square-linf-8/255",
                                  "spsa-linf-8/255", "cw-l2-1", "deepfool-l2-1", "fab-linf-8/255"])
def test_every_attack_runs_within_its_contract(batch, name):
    model, images, labels = batch
    outcome = run_attack(model, images, labels, parse_attack(name), seed=0)
    assert outcome.robust.shape == (16,) and outcome.robust.dtype == torch.bool
    assert outcome.robust.sum() <= outcome.clean_correct.sum()
    assert 0 <= outcome.adversarial.min() and outcome.adversarial.max() <= 1


def test_validity_check_fires_outside_the_ball_and_outside_pixel_range():
    spec = parse_attack("pgd-linf-1/255")
    clean = torch.full((2, 3, 4, 4), 0.5)
    check_adversarial(clean, clean + spec.eps, spec)
    with pytest.raises(AttackValidityError, match="exceeds eps"):
        check_adversarial(clean, clean + 2 * spec.eps, spec)
    with pytest.raises(AttackValidityError, match="leave"):
        check_adversarial(torch.ones(1, 3, 2, 2), torch.ones(1, 3, 2, 2) + 1e-3, spec)


@pytest.fixture
def broken_attack():
    """Registers a throw-away attack whose torchattacks object misbehaves as `behaviour` says."""
    created = []

    def make(behaviour):
        class Broken:
            def __init__(self, model, spec):
                self.model, self.spec = model, spec

            def __call__(self, images, labels):
                if behaviour == "outside":
                    return (images + 3 * self.spec.eps).clamp(0, 1)
                return images.clone()

        register_attack(f"broken{behaviour}", norms=("linf",))(lambda model, spec, n, seed: Broken(model, spec))
        created.append(f"broken{behaviour}")
        return parse_attack(f"broken{behaviour}-linf-1/255")

    yield make
    for name in created:
        ATTACKS.unregister(name)


def test_a_wrapper_that_leaves_the_ball_fails(batch, broken_attack):
    model, images, labels = batch
    with pytest.raises(AttackValidityError, match="exceeds eps"):
        run_attack(model, images, labels, broken_attack("outside"), seed=0)


def test_an_attack_returning_its_input_fails(batch, broken_attack):
    model, images, labels = batch
    with pytest.raises(AttackValidityError, match="unchanged"):
        run_attack(model, images, labels, broken_attack("identity"), seed=0)


def test_a_model_left_in_train_mode_fails(batch):
    model, images, labels = batch
    with pytest.raises(AttackValidityError, match="train mode"):
        run_attack(model.train(), images, labels, parse_attack("pgd-linf-1/255"), seed=0)


def test_normalization_before_the_attack_fails(batch):
    model, images, labels = batch
    normalized = (images - 0.5) / 0.25
    with pytest.raises(AttackValidityError, match="normalization applied before the attack"):
        run_attack(model, normalized, labels, parse_attack("pgd-linf-1/255"), seed=0)


def test_a_model_without_input_gradient_fails(batch):
    _, images, labels = batch

    class Detached(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Linear().eval()

        def forward(self, x):
            return self.inner(x.detach()) + 0 * x.sum()

    with pytest.raises(AttackValidityError, match="gradient of the loss is zero"):
        run_attack(Detached().eval(), images, labels, parse_attack("pgd-linf-1/255"), seed=0)


def test_save_adversarials_keeps_images_and_outcomes(tmp_path, batch):
    import numpy as np

    from harness.data import Preprocess
    from harness.evaluate import Attacked, RunContext, attack, save_adversarials
    from harness.models import LoadedModel, ModelId, PixelClassifier

    linear, images, labels = batch
    classifier = PixelClassifier(linear, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).eval().requires_grad_(False)
    model = LoadedModel(ModelId("test", "linear"), classifier, ("a", "b", "c", "d"), Preprocess(8, 8), {})
    uint8 = (images.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    with torch.no_grad():
        targets = classifier(torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255).argmax(1)
    target = tmp_path / "line" / "pgd.npz"
    attacked = attack(model, uint8, targets.numpy(), parse_attack("pgd-linf-16/255"),
                      RunContext(torch.device("cpu"), batch_size=8, save_adversarials=tmp_path))
    assert isinstance(attacked, Attacked)
    save_adversarials(target, attacked, targets.numpy())
    robust, stats = attacked.robust, attacked.stats
    saved = np.load(target)
    assert saved["images"].shape == uint8.shape and saved["images"].dtype == np.uint8
    assert np.array_equal(saved["robust"], robust) and np.abs(saved["images"].astype(int) - uint8).max() <= 17
    assert stats["clean_accuracy"] == 1.0
