import numpy as np

from case_records import measured
from harness.checks import dose_response_violations
from harness.metrics import wilson_interval


def dosed(case_id, correct, n, model="embedded:synth-clip", **setting):
    """A measured case with its first `correct` of `n` samples right, and its Wilson 95% interval."""
    bits = np.arange(n) < correct
    return measured(bits, id=case_id, model=model, interval95=list(wilson_interval(correct, n)), setting=setting)


def attack_case(case_id, eps, correct, n=100, attack="pgd", model="embedded:synth-clip"):
    return dosed(case_id, correct, n, model, attack={"attack": attack, "norm": "linf", "eps": eps})


def corruption_case(case_id, name, severity, correct, n=100):
    return dosed(case_id, correct, n, "m", corruption={"name": name, "severity": severity})


def test_accuracy_rising_with_eps_beyond_the_interval_is_flagged():
    cases = [attack_case("a-1", 1 / 255, 40), attack_case("a-2", 2 / 255, 60)]
    [message] = dose_response_violations(cases)
    assert message.startswith("a-2: accuracy 0.6000 is above the 95% interval of the weaker a-1")
    assert "it got 20 right that the weaker got wrong against 0 the other way" in message


def test_noise_within_the_interval_and_other_ladders_pass():
    cases = [attack_case("a-1", 1 / 255, 40), attack_case("a-2", 2 / 255, 45),
             attack_case("b-2", 2 / 255, 90, attack="fgsm"),
             corruption_case("s-1", "fog", 1, 50), corruption_case("s-2", "fog", 2, 30)]
    assert dose_response_violations(cases) == []


def test_a_small_run_is_judged_on_its_pairs_not_on_its_interval():
    """The smoke run's false alarm: at n=50, zoom_blur-1 at 0.96 and zoom_blur-2 at 1.00 is two samples' noise."""
    weaker, stronger = corruption_case("z-1", "zoom_blur", 1, 48, n=50), corruption_case("z-2", "zoom_blur", 2, 50, n=50)
    assert stronger.accuracy > weaker.interval95[1]
    assert dose_response_violations([weaker, stronger]) == []
    assert len(dose_response_violations([corruption_case("z-1", "zoom_blur", 1, 30, n=50),
                                         corruption_case("z-2", "zoom_blur", 2, 45, n=50)])) == 1


def test_severity_ladder_is_checked():
    assert len(dose_response_violations([corruption_case("s-1", "fog", 1, 50), corruption_case("s-2", "fog", 2, 70)])) == 1


def test_corruptions_whose_severities_are_not_one_dose_are_not_checked():
    def ladder(name):
        return [corruption_case(f"m-{name}-{s}", name, s, correct) for s, correct in ((2, 50), (3, 80))]
    assert dose_response_violations(ladder("saturate") + ladder("spatter")) == []
    assert len(dose_response_violations(ladder("contrast"))) == 1


def _attack_record(name, bits, white_box, minimum_norm=False, **attack):
    from case_records import measured

    spec = {"attack": name.split("-")[0], "norm": "linf", "eps": 1 / 255, "white_box": white_box,
            "minimum_norm": minimum_norm, **attack}
    return measured(bits, id=f"m-{name}", setting={"category": "adversarial", "name": name, "split": "test",
                                                   "attack": spec})


def test_a_black_box_attack_stronger_than_a_white_box_one_on_the_same_samples_is_flagged():
    from harness.checks import masking_violations

    white = _attack_record("pgd-linf-1/255", [True] * 40 + [False] * 10, white_box=True)
    black = _attack_record("square-linf-1/255", [True] * 10 + [False] * 10, white_box=False)  # first 20 samples
    (problem,) = masking_violations([white, black])
    assert "m-square-linf-1/255 (black box) leaves 10/20 robust" in problem and "m-pgd-linf-1/255" in problem
    weaker = _attack_record("square-linf-1/255", [True] * 19 + [False], white_box=False)
    assert masking_violations([white, weaker]) == []


def test_masking_compares_only_the_same_norm_budget_and_space_and_never_minimum_norm_attacks():
    from harness.checks import masking_violations

    black = _attack_record("square-linf-1/255", [False] * 20, white_box=False)
    others = [_attack_record("pgd-linf-2/255", [True] * 20, white_box=True, eps=2 / 255),
              _attack_record("pgd-l2-1/255", [True] * 20, white_box=True, norm="l2"),
              _attack_record("pgd-linf-1/255-roz", [True] * 20, white_box=True, space="roz"),
              _attack_record("fab-linf-1/255", [True] * 20, white_box=True, minimum_norm=True)]
    assert masking_violations([black, *others]) == []


def test_a_black_box_attack_is_compared_with_the_worst_case_of_the_white_box_attacks():
    """FGSM alone is weak; Square beating it is no sign of masking when PGD at the same budget breaks those
    samples too. And a black-box case with more samples is compared on the white box's prefix."""
    from harness.checks import masking_violations

    fgsm = _attack_record("fgsm-linf-1/255", [True] * 20, white_box=True)
    pgd = _attack_record("pgd-linf-1/255", [False] * 12 + [True] * 8, white_box=True)
    square = _attack_record("square-linf-1/255", [False] * 12 + [True] * 28, white_box=False)
    assert masking_violations([fgsm, pgd, square]) == []
    (problem,) = masking_violations([fgsm, square])
    assert "leaves 8/20 robust" in problem
