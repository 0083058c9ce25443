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
    from harness.data import EvalData
    from harness.evaluate import Attacked, RunContext, attack, save_adversarials
    from harness.shifts.base import Inputs
    from harness.models import LoadedModel, ModelId, PixelClassifier

    linear, images, labels = batch
    classifier = PixelClassifier(linear, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).eval().requires_grad_(False)
    model = LoadedModel(ModelId("test", "linear"), classifier, ("a", "b", "c", "d"), Preprocess(8, 8), {})
    uint8 = (images.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    with torch.no_grad():
        targets = classifier(torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255).argmax(1)
    target = tmp_path / "line" / "pgd.npz"
    inputs = Inputs(EvalData(uint8, targets.numpy(), {}), uint8, {})
    attacked = attack(model, inputs, parse_attack("pgd-linf-16/255"),
                      RunContext(torch.device("cpu"), batch_size=8, save_adversarials=tmp_path))
    assert isinstance(attacked, Attacked)
    save_adversarials(target, attacked, targets.numpy())
    robust, stats = attacked.robust, attacked.stats
    saved = np.load(target)
    assert saved["images"].shape == uint8.shape and saved["images"].dtype == np.uint8
    assert np.array_equal(saved["robust"], robust) and np.abs(saved["images"].astype(int) - uint8).max() <= 17
    assert stats["clean_accuracy"] == 1.0


def test_a_roz_budget_is_labelled_and_parsed_apart_from_pixel_units():
    spec = parse_attack("pgd-linf-8/255-roz")
    assert spec.space == "roz" and spec.name == "pgd-linf-8/255-roz" and spec.as_dict()["space"] == "roz"
    assert spec.eps == pytest.approx(8 / 255)
    assert "space" not in parse_attack("pgd-linf-8/255").as_dict()  # pixel records as before
    with pytest.raises(ValueError, match="normalized units"):
        parse_attack("pgd-linf-300/255-roz")


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def test_the_roz_space_bounds_the_normalized_perturbation_and_clips_to_rozs_box(batch):
    from harness.attacks import ROZ_BOX
    from harness.models import PixelClassifier

    linear, images, _ = batch
    classifier = PixelClassifier(linear, CLIP_MEAN, CLIP_STD).eval().requires_grad_(False)
    with torch.no_grad():
        labels = classifier(images).argmax(1)
    spec = parse_attack("pgd-linf-8/255-roz")
    outcome = run_attack(classifier, images, labels, spec, seed=0)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    normalized_clean, normalized_adversarial = (images - mean) / std, (outcome.adversarial - mean) / std
    change = (normalized_adversarial - normalized_clean).abs().flatten(1).amax(1)
    assert change.max() <= spec.eps + 1e-5 and change.max() > spec.eps / 2  # the budget is stated on z
    assert normalized_adversarial.min() >= ROZ_BOX[0] - 1e-5 and normalized_adversarial.max() <= ROZ_BOX[1] + 1e-5
    pixel_change = (outcome.adversarial - images).abs().flatten(1).amax(1).max()
    assert pixel_change <= spec.eps * max(CLIP_STD) + 1e-5  # about 0.27x in pixels
    assert torch.allclose(outcome.norms[outcome.clean_correct], change[outcome.clean_correct], atol=1e-5)


@pytest.mark.parametrize("std", [0.25, 0.5])  # normalized ranges [-2, 2] (wider) and [-1, 1] (narrower)
def test_the_roz_space_refuses_a_model_whose_normalization_is_not_rozs_box(batch, std):
    from harness.models import PixelClassifier

    linear, images, labels = batch
    classifier = PixelClassifier(linear, (0.5,) * 3, (std,) * 3).eval()
    with pytest.raises(AttackValidityError, match="which is not RoZ's box"):
        run_attack(classifier, images, labels, parse_attack("pgd-linf-8/255-roz"), seed=0)


def test_the_worst_case_is_never_above_a_component_and_each_component_is_its_standalone_run(batch):
    model, images, labels = batch
    spec = dataclasses.replace(parse_attack("autoattack-linf-4/255"), queries=50)
    worst = run_attack(model, images, labels, spec, seed=5)
    assert set(worst.components) == {"apgd-ce", "apgd-t", "fab-t", "square"}
    check_adversarial(images, worst.adversarial, dataclasses.replace(spec, minimum_norm=False))
    alone = {name: run_attack(model, images, labels, dataclasses.replace(
        parse_attack(f"{name}-linf-4/255"), queries=50 if name == "square" else 0), seed=5) for name in worst.components}
    for name, robust in worst.components.items():
        assert torch.equal(alone[name].robust, robust), name  # each component is exactly its standalone run
    assert torch.equal(worst.robust, torch.stack(list(worst.components.values())).all(0))
    first = alone["apgd-ce"]
    broken_first = first.clean_correct & ~first.robust
    assert broken_first.any()
    assert torch.equal(worst.adversarial[broken_first], first.adversarial[broken_first])  # the first breaker's image
    survivors = worst.robust
    assert torch.equal(worst.adversarial[survivors], alone["square"].adversarial[survivors])


def test_autoattack_worst_case_matches_torchattacks_autoattack_on_the_same_samples(tmp_path):
    """RobustBench's standard AutoAttack (torchattacks' own MultiAttack of APGD-CE, APGD-T, FAB-T and Square) against
    the per-sample worst case, on the first 40 test images of synth-cnn at 4/255, both with Square at 500 queries
    (the standard's 5,000 would make this test take minutes); the robust accuracies agree within the Wilson
    interval of either."""
    import torchattacks

    from harness.cache import ArrayCache
    from harness.data import get_benchmark
    from harness.evaluate import to_pixels
    from harness.metrics import wilson_interval
    from harness.models import load_model

    model = load_model("embedded:synth-cnn", torch.device("cpu"))
    data = get_benchmark("synth").load("test", 40, ArrayCache(tmp_path), model.preprocess)
    images, labels = to_pixels(data.images, torch.device("cpu")), torch.from_numpy(data.labels)
    spec = dataclasses.replace(parse_attack("autoattack-linf-4/255"), queries=500)
    ours = run_attack(model.classifier, images, labels, spec, seed=0)
    reference = torchattacks.AutoAttack(model.classifier, norm="Linf", eps=4 / 255, version="standard",
                                        n_classes=10, seed=0)
    square = reference._autoattack.attacks[-1]
    assert isinstance(square, torchattacks.Square) and square.n_queries == 5000
    square.n_queries = 500
    with torch.no_grad():
        theirs = model.classifier(reference(images, labels)).argmax(1) == labels
    n, ours_correct, theirs_correct = len(labels), int(ours.robust.sum()), int(theirs.sum())
    assert ours_correct > 0 and ours_correct < int(ours.clean_correct.sum())  # the case is neither trivial
    lo, hi = wilson_interval(theirs_correct, n)
    assert lo <= ours_correct / n <= hi, (ours_correct, theirs_correct)
    lo, hi = wilson_interval(ours_correct, n)
    assert lo <= theirs_correct / n <= hi


def test_run_options_replace_an_attacks_steps_and_queries(tmp_path):
    from harness.attacks import configured_attack
    from harness.config import ConfigError, build_config

    config = build_config(tmp_path, {"adversarial": {"options": {"autoattack": {"queries": 5000},
                                                                 "pgd": {"steps": 100}}}}, {})
    assert configured_attack(config, "adversarial", "autoattack-linf-1/255").queries == 5000
    assert configured_attack(config, "adversarial", "pgd-linf-1/255").steps == 100
    assert configured_attack(config, "adversarial", "pgd-linf-1/255").as_dict()["steps"] == 100  # in the protocol
    components = configured_attack(config, "adversarial", "autoattack-linf-1/255").as_dict()["components"]
    assert [c["attack"] for c in components] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert components[-1]["queries"] == 5000 and components[0]["steps"] == 10  # each component's protocol
    for options, refused in (({"pgd": {"queries": 5}}, "pgd takes no queries"),
                             ({"autoattack": {"steps": 100}}, "autoattack takes no steps")):
        with pytest.raises(ConfigError, match=refused):
            configured_attack(build_config(tmp_path, {"adversarial": {"options": options}}, {}), "adversarial",
                              f"{next(iter(options))}-linf-1/255")
    with pytest.raises(ConfigError, match="unknown attack"):
        configured_attack(build_config(tmp_path, {"adversarial": {"options": {"pgdd": {"steps": 1}}}}, {}),
                          "adversarial", "pgd-linf-1/255")
    with pytest.raises(ConfigError, match="steps, queries, restarts"):
        build_config(tmp_path, {"adversarial": {"options": {"pgd": {"eps": 1}}}}, {})


class GradientMasked(torch.nn.Module):
    """A model that masks its gradients: its logits are the embedded CNN's on pixels rounded to 1/255 (a
    non-differentiable forward), and its input gradient is a decoy, the CNN's own gradient reversed."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        decoy = -self.inner(x)
        return self.inner((x * 255).round().detach() / 255) + decoy - decoy.detach()


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory):
    from harness.cache import ArrayCache
    from harness.data import get_benchmark
    from harness.models import load_model

    model = load_model("embedded:synth-cnn", torch.device("cpu"))
    masked = dataclasses.replace(model, network=GradientMasked(model.classifier))
    data = get_benchmark("synth").load("test", 50, ArrayCache(tmp_path_factory.mktemp("cache")), model.preprocess)
    return masked, data


def test_a_gradient_masking_model_fails_its_canary(masked_model):
    from harness.attacks import Attack
    from harness.cases import Case
    from harness.evaluate import CaseScorer, RunContext
    from harness.settings import Setting
    from harness.shifts.base import Inputs

    model, data = masked_model
    canary = Attack(parse_attack("pgd-linf-16/255"), ceiling=0.1)
    case = Case("masked", "masked", "synth", Setting("adversarial", "canary-pgd-linf-16/255", "test", 50,
                                                     perturbation=canary))
    scorer = CaseScorer(case, model, RunContext(torch.device("cpu"), batch_size=50))
    scored = canary.score(Inputs(data, data.images, {}), scorer, None)
    with pytest.raises(AttackValidityError, match="GRADIENT MASKING suspected: pgd-linf-16/255 leaves 1.000 of"):
        canary.summarize(scored)


def test_a_canary_needs_enough_samples_correct_clean_to_judge():
    import numpy as np

    from harness.attacks import Attack
    from harness.shifts.base import Scored

    # a model right on 5 of 100 clean samples, none of them surviving
    scored = Scored(np.zeros(100, dtype=bool), columns={"clean_correct": np.arange(100) < 5, "norm": np.zeros(100)})
    with pytest.raises(AttackValidityError, match="only 5 of 100 samples are correct clean"):
        Attack(parse_attack("pgd-linf-16/255"), ceiling=0.1).summarize(scored)


def test_a_gradient_masking_model_is_flagged_when_a_black_box_attack_beats_the_white_box_one(masked_model):
    from case_records import measured
    from harness.checks import masking_violations
    from harness.evaluate import RunContext, attack
    from harness.shifts.base import Inputs

    model, data = masked_model
    run = RunContext(torch.device("cpu"), batch_size=50)
    records = []
    for text in ("pgd-linf-16/255", "square-linf-16/255"):
        spec = parse_attack(text)
        attacked = attack(model, Inputs(data, data.images, {}), spec, run)
        records.append(measured(attacked.robust, id=f"masked-{text}", model="masked",
                                setting={"category": "adversarial", "name": text, "split": "test",
                                         "attack": spec.as_dict()}))
    white, black = records
    assert black.accuracy < white.accuracy - 0.2  # the decoy gradient leads PGD away, Square is not fooled
    (problem,) = masking_violations(records)
    assert problem.startswith("GRADIENT MASKING suspected: masked-square-linf-16/255 (black box)")
    assert "masked-pgd-linf-16/255" in problem
    unmasked = dataclasses.replace(black, per_sample=white.per_sample, correct=white.correct)
    assert masking_violations([white, unmasked]) == []


def test_real_imagenet_models_transfer_from_resnet152_by_default(root):
    """RoZ's substitute: with the shipped configuration, an open_clip model's transfer attacks are crafted on
    torchvision's ResNet-152; the embedded models use each other; a model is never its own surrogate."""
    from harness.attacks import surrogate_for
    from harness.config import build_config, read_pyproject_table
    from harness.settings import SettingScope

    config = build_config(root, read_pyproject_table(root / "pyproject.toml"), {})
    resnet = "torchvision:resnet152@IMAGENET1K_V1"
    assert surrogate_for(SettingScope(config, "openclip:ViT-B-32@openai", "imagenet", "val")) == resnet
    assert surrogate_for(SettingScope(config, resnet, "imagenet", "val")) is None
    assert surrogate_for(SettingScope(config, "embedded:synth-clip", "synth", "test")) == "embedded:synth-cnn"
