from case_records import case_record
from harness.checks import dose_response_violations


def attack_case(case_id, eps, accuracy, interval, model="embedded:synth-clip", attack="pgd"):
    return case_record(id=case_id, model=model, accuracy=accuracy, interval95=interval,
                       setting={"attack": {"attack": attack, "norm": "linf", "eps": eps}})


def test_accuracy_rising_with_eps_beyond_the_interval_is_flagged():
    cases = [attack_case("a-1", 1 / 255, 0.40, [0.33, 0.47]), attack_case("a-2", 2 / 255, 0.60, [0.53, 0.67])]
    [message] = dose_response_violations(cases)
    assert message.startswith("a-2: accuracy 0.6000 is above the 95% interval of the weaker a-1")


def test_noise_within_the_interval_and_other_ladders_pass():
    cases = [attack_case("a-1", 1 / 255, 0.40, [0.33, 0.47]), attack_case("a-2", 2 / 255, 0.45, [0.38, 0.52]),
             attack_case("b-2", 2 / 255, 0.90, [0.85, 0.94], attack="fgsm"),
             case_record(id="s-1", model="m", accuracy=0.5, interval95=[0.4, 0.6],
                         setting={"corruption": {"name": "fog", "severity": 1}}),
             case_record(id="s-2", model="m", accuracy=0.3, interval95=[0.2, 0.4],
                         setting={"corruption": {"name": "fog", "severity": 2}})]
    assert dose_response_violations(cases) == []


def test_severity_ladder_is_checked():
    cases = [case_record(id=f"s-{s}", model="m", accuracy=a, interval95=[a - 0.05, a + 0.05],
                         setting={"corruption": {"name": "fog", "severity": s}}) for s, a in ((1, 0.5), (2, 0.7))]
    assert len(dose_response_violations(cases)) == 1


def test_corruptions_whose_severities_are_not_one_dose_are_not_checked():
    def ladder(name):
        return [case_record(id=f"m-{name}-{s}", model="m", accuracy=a, interval95=[a - 0.05, a + 0.05],
                            setting={"corruption": {"name": name, "severity": s}}) for s, a in ((2, 0.5), (3, 0.8))]
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
