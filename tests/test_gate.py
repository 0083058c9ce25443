"""The gate's decision: a regression fails on the threshold or the paired test, an improvement never does, other
protocols are not compared, and pixel drift under the same recipe is shown and still gated."""
import numpy as np
import pytest

from case_records import corruption_record, measured
from harness.baselines import baseline_entry
from harness.config import GatePolicy
from harness.gate import decide


POLICY = GatePolicy(confidence=0.99, margin=0.01)


def test_gate_passes_equal_and_fails_a_clear_regression():
    baseline = baseline_entry(measured([True] * 90 + [False] * 10), POLICY)
    same = decide(measured([True] * 90 + [False] * 10), baseline, "baselines/x.json", "cmd")
    worse = decide(measured([True] * 70 + [False] * 30), baseline, "baselines/x.json", "cmd")
    assert same.status == "passed" and same.ok
    assert worse.status == "regressed" and not worse.ok
    assert "0.7000" in worse.message and "threshold" in worse.message


def test_gate_explains_a_missing_baseline():
    decision = decide(measured([True] * 10), None, "baselines/synth-clip.json",
                      "pytest --model embedded:synth-clip --update-baselines")
    assert decision.status == "no-baseline" and not decision.ok
    assert "--update-baselines" in decision.message and "baselines/synth-clip.json" in decision.message


def test_gate_refuses_to_compare_unlike_protocols():
    baseline = baseline_entry(measured([True] * 10), POLICY)
    decision = decide(measured([True] * 10, seed=1, data_sha256="other"), baseline, "b.json", "cmd")
    assert decision.status == "protocol-mismatch"
    assert "seed: baseline 0, now 1" in decision.message and "data_sha256" in decision.message


def test_paired_gate_tolerates_churn_but_catches_a_consistent_small_drop():
    n = 1000
    base = np.zeros(n, dtype=bool)
    base[:900] = True
    baseline = baseline_entry(measured(base), POLICY)
    churn = base.copy()
    churn[:40] = False          # 40 correct -> wrong ...
    churn[900:935] = True       # ... and 35 wrong -> correct: noise of a retrained model
    noisy = decide(measured(churn), baseline, "b.json", "cmd")
    assert noisy.status == "passed", noisy.message
    assert noisy.flips == {"to_wrong": 40, "to_right": 35} and noisy.p_value > 0.3
    drop = base.copy()
    drop[:25] = False           # 25 correct -> wrong, none back: 2.5 points, above the Wilson threshold
    worse = decide(measured(drop), baseline, "b.json", "cmd")
    assert measured(drop).accuracy > baseline["threshold"]
    assert worse.status == "regressed" and "significant" in worse.message and worse.p_value < 1e-6


def test_max_flip_rate_gate():
    base = np.array([True] * 50 + [False] * 50)
    swapped = ~base
    baseline = baseline_entry(measured(base), POLICY)
    assert decide(measured(swapped), baseline, "b.json", "cmd").status == "passed"
    limited = decide(measured(swapped), baseline, "b.json", "cmd", max_flip_rate=0.1)
    assert limited.status == "regressed" and "flip rate 1.0000 > --max-flip-rate 0.1" in limited.message


@pytest.fixture
def corrupted_images():
    return np.random.default_rng(0).integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)


def test_a_library_version_that_moved_is_named_with_both_versions(corrupted_images):
    bits = [True] * 15 + [False] * 5
    baseline = baseline_entry(corruption_record(bits, corrupted_images), POLICY)
    assert baseline["pixel_recipe"]["libraries"]["scipy"] == "1.17.1" and "image_digests" in baseline
    moved = corruption_record(bits, corrupted_images,
                              {"imagecorruptions": "1.1.5", "numpy": "2.4.6", "scipy": "1.18.0"})
    decision = decide(moved, baseline, "baselines/x.json", "cmd")
    assert decision.status == "protocol-mismatch"
    assert "library scipy: baseline 1.17.1, now 1.18.0" in decision.message
    assert "numpy" not in decision.message.split("not comparable:")[1].split(".")[0]
    assert "make install" in decision.message and "requirements.lock" in decision.message


def test_bytes_that_drift_under_the_same_recipe_are_gated_and_shown(corrupted_images):
    bits = [True] * 15 + [False] * 5
    baseline = baseline_entry(corruption_record(bits, corrupted_images), POLICY)
    drifted = corrupted_images.copy()
    drifted[[3, 11], 0, 0, 0] ^= 1
    same = decide(corruption_record(bits, drifted, data_sha256="drifted"), baseline, "b.json", "cmd")
    assert same.status == "passed" and same.pixel_drift.images_differing == 2
    assert "pixel drift under the same recipe: 2 of 20 images differ in bytes" in same.message
    worse = decide(corruption_record([False] * 20, drifted, data_sha256="drifted"), baseline, "b.json", "cmd")
    assert worse.status == "regressed" and worse.pixel_drift is not None


def test_project_computed_pixels_that_differ_are_refused_with_the_right_fix():
    baseline = baseline_entry(measured([True] * 10), POLICY)
    decision = decide(measured([True] * 10, data_sha256="other"), baseline, "b.json", "cmd")
    assert decision.status == "protocol-mismatch" and "computed exactly on every CPU" in decision.message


def _minimal_record(values, precision=0.001):
    from harness.records import encode_values

    values = np.asarray(values, dtype=float)
    return measured(np.isinf(values), per_sample_values=encode_values(values), metrics={"precision": precision})


def test_a_minimal_perturbation_gates_its_median_with_a_paired_test_on_the_values():
    before = [0.010] * 30 + [np.inf] * 10
    entry = baseline_entry(_minimal_record(before), GatePolicy(0.99, 0.01))
    same = decide(_minimal_record(before), entry, "b.json", "record")
    assert same.ok and "correct clean in both runs 0.01 " in same.message
    fell = decide(_minimal_record([0.005] * 30 + [np.inf] * 10), entry, "b.json", "record")
    assert fell.status.value == "regressed" and "median minimal perturbation fell" in fell.message
    rose = decide(_minimal_record([0.020] * 30 + [np.inf] * 10), entry, "b.json", "record")
    assert rose.ok  # one-sided: an improvement never fails
    within = decide(_minimal_record([0.0096] * 30 + [np.inf] * 10), entry, "b.json", "record")
    assert within.ok  # a fall below the search's precision is not a measured fall


def test_a_median_that_fell_by_one_sample_is_not_significant():
    before = [0.010] * 20 + [0.020] * 20
    entry = baseline_entry(_minimal_record(before), GatePolicy(0.99, 0.01))
    now = [0.010] * 21 + [0.020] * 19  # the median falls from 0.015 to 0.010, but only one sample moved
    decision = decide(_minimal_record(now), entry, "b.json", "record")
    assert decision.ok and "median minimal eps over the 40 samples" in decision.message
    assert "0.015" in decision.message and "p=0.5" in decision.message


def test_a_minimal_perturbation_that_fell_regresses_even_when_most_samples_are_wrong_clean():
    before = [0.0] * 55 + [0.020] * 45  # clean accuracy 0.45: the median over all samples is 0 either way
    entry = baseline_entry(_minimal_record(before), GatePolicy(0.99, 0.01))
    fell = decide(_minimal_record([0.0] * 55 + [0.002] * 45), entry, "b.json", "record")
    assert fell.status.value == "regressed" and "median minimal perturbation fell" in fell.message
