import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.metrics import pm_k_correct, wilson_interval, wilson_lower_one_sided


def test_wilson_matches_a_hand_computed_value():
    # 90 of 100 at 95%: centre 0.8852, half-width 0.0596 (Wilson 1927 formula, z = 1.959964)
    lo, hi = wilson_interval(90, 100, 0.95)
    assert lo == pytest.approx(0.8256, abs=1e-4)
    assert hi == pytest.approx(0.9448, abs=1e-4)


def test_wilson_extremes_stay_in_unit_interval():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[1] > 0.0


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(5, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@given(n=st.integers(1, 5000), data=st.data(), confidence=st.floats(0.5, 0.999))
def test_wilson_contains_the_estimate_and_narrows_with_confidence(n, data, confidence):
    correct = data.draw(st.integers(0, n))
    lo, hi = wilson_interval(correct, n, confidence)
    assert 0 <= lo <= correct / n <= hi <= 1
    lower = wilson_lower_one_sided(correct, n, confidence)
    assert lower <= correct / n + 1e-12
    assert math.isfinite(lower)


def test_pm_k_needs_every_frame_within_k_of_the_anchor():
    frames = np.array([[1, 1, 1, 1, 1],
                       [0, 1, 1, 1, 1],
                       [1, 0, 1, 1, 1],
                       [1, 1, 0, 1, 1]], dtype=bool)
    assert pm_k_correct(frames, 0).tolist() == [True, True, True, False]
    assert pm_k_correct(frames, 1).tolist() == [True, True, False, False]
    assert pm_k_correct(frames, 2).tolist() == [True, False, False, False]
    with pytest.raises(ValueError):
        pm_k_correct(frames, 3)


def test_corruption_summary_matches_hand_computation():
    from harness.metrics import ALEXNET_CORRUPTION_ERROR, corruption_summary

    accuracy = {"fog": {1: 0.9, 2: 0.7}, "contrast": {1: 0.8, 2: 0.4}}
    summary = corruption_summary(accuracy, clean_accuracy=0.95, normalize_by_alexnet=True)
    assert summary["corruption_error"] == {"contrast": pytest.approx(0.4), "fog": pytest.approx(0.2)}
    assert summary["mce_unnormalized"] == pytest.approx(0.3)
    assert summary["accuracy_by_severity"] == {"1": pytest.approx(0.85), "2": pytest.approx(0.55)}
    expected = (0.2 / ALEXNET_CORRUPTION_ERROR["fog"] + 0.4 / ALEXNET_CORRUPTION_ERROR["contrast"]) / 2
    assert summary["mce"] == pytest.approx(expected, abs=1e-6)
    assert "mce" not in corruption_summary(accuracy, 0.95, normalize_by_alexnet=False)


def test_values_lower_p_ranks_infinity_above_every_value_and_is_one_sided():
    from harness.metrics import values_lower_p

    before = np.array([0.01] * 20 + [np.inf] * 5)
    assert values_lower_p(before, before) == 1.0
    assert values_lower_p(np.array([0.005] * 20 + [np.inf] * 5), before) < 1e-4
    assert values_lower_p(np.array([0.02] * 20 + [np.inf] * 5), before) > 0.99
    assert values_lower_p(np.array([0.01] * 20 + [0.5] * 5), before) < 0.05  # inf -> finite is a fall
