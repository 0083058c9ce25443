import numpy as np
import pytest

from harness.baselines import baseline_entry, threshold_for
from case_records import case_record
from harness.records import encode_bits
from harness.config import GatePolicy
from harness.gate import decide
from harness.sensitivity import POWER, detectable_drop, gate_power

POLICY = GatePolicy()


def _record(bits):
    return case_record(id="c", data_sha256="d", seed=0, n=int(bits.size), correct=int(bits.sum()),
                       accuracy=float(bits.mean()), interval95=[0.0, 1.0], per_sample=encode_bits(bits))


@pytest.mark.parametrize("n, accuracy, discordance", [(200, 0.9, 0.0), (300, 0.5, 0.1), (500, 0.92, 0.05)])
def test_the_detectable_drop_fails_the_real_gate_with_80_percent_power(n, accuracy, discordance):
    """Candidates drawn from the sensitivity model at the detectable drop, gated by harness.gate.decide."""
    rng = np.random.default_rng(0)
    baseline_bits = np.zeros(n, bool)
    baseline_bits[:round(accuracy * n)] = True
    entry = baseline_entry(_record(baseline_bits), POLICY)
    drop = detectable_drop(n, entry["correct"], entry["threshold"], POLICY, discordance)
    churn = max(discordance, drop)
    to_wrong, to_right = (churn + drop) / 2, (churn - drop) / 2
    failed = 0
    trials = 1500
    for _ in range(trials):
        flip = rng.random(n)
        bits = np.where(baseline_bits, flip >= to_wrong / accuracy, flip < to_right / (1 - accuracy))
        failed += decide(_record(bits), entry, "b.json", "cmd").status == "regressed"
    assert abs(failed / trials - POWER) < 0.05, (drop, failed / trials)


def test_more_samples_detect_smaller_drops_and_churn_hides_them():
    drops = [detectable_drop(n, round(0.9 * n), threshold_for(round(0.9 * n), n, POLICY), POLICY) for n in (50, 200, 1000)]
    assert drops[0] > drops[1] > drops[2] > 0
    calm, churned = (detectable_drop(300, 270, threshold_for(270, 300, POLICY), GatePolicy(0.99, 0.01), d)
                     for d in (0.0, 0.2))
    assert churned > calm
    assert gate_power(0.0, 300, 270, threshold_for(270, 300, POLICY), GatePolicy(0.99, 0.01), 0.0) < 0.01


def test_a_case_that_cannot_detect_anything_says_so():
    assert detectable_drop(5, 1, 0.0, GatePolicy(0.99, 0.01)) is None
    assert detectable_drop(100, 0, 0.0, GatePolicy(0.99, 0.01)) is None
