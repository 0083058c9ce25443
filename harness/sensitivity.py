"""What a case's gate can detect: the smallest accuracy drop that fails it with 80% power.

A candidate that is worse by `drop` on the baseline's samples, with discordance `d` (the share of samples whose
outcome changes either way, as retraining churns them), flips each baseline-correct sample to wrong with
probability (max(d, drop) + drop) / 2 and each wrong one to right with (max(d, drop) - drop) / 2. The gate rule
(harness.gate) fails the case when its accuracy is below the threshold, or when the paired drop exceeds the margin
and the exact McNemar test says "worse" at the policy's confidence. Its power is summed exactly over the
distribution of the two flip counts; the detectable drop is found by bisection.
"""
from __future__ import annotations

import numpy as np

from . import binomial
from .config import GatePolicy

POWER = 0.8
_TAIL = 1e-9


def gate_power(drop: float, n: int, correct: int, threshold: float, policy: GatePolicy, discordance: float) -> float:
    """P(the gate fails the case) for a candidate worse by `drop` (accuracy units) at `discordance`."""
    accuracy = correct / n
    churn = max(discordance, drop)
    to_wrong = min(accuracy, (churn + drop) / 2)
    to_right = min(1 - accuracy, max(0.0, to_wrong - drop))
    b = np.arange(binomial.ppf(_TAIL, n, to_wrong), binomial.isf(_TAIL, n, to_wrong) + 2)[:, None]
    c_high = binomial.isf(_TAIL, n, to_right) + 2 if to_right > 0 else 1
    c = np.arange(0, c_high)[None, :]
    remaining = np.maximum(n - b, 0)
    probability = binomial.pmf(b, n, to_wrong) * (
        binomial.pmf(c, remaining, to_right / (1 - to_wrong)) if to_right > 0 else (c == 0))
    below_threshold = (correct - b + c) / n < threshold
    worse = ((b - c) / n > policy.margin) & (binomial.sf(b - 1, b + c, 0.5) < 1 - policy.confidence)
    return float((probability * (below_threshold | worse)).sum())


def detectable_drop(n: int, correct: int, threshold: float, policy: GatePolicy, discordance: float = 0.0,
                    power: float = POWER) -> float | None:
    """The smallest drop (accuracy units, to 1e-4) that fails the case with `power`, or None when even a drop
    to zero accuracy would not (too few samples, or a baseline already near zero)."""
    accuracy = correct / n
    if accuracy == 0 or gate_power(accuracy, n, correct, threshold, policy, discordance) < power:
        return None
    low, high = 0.0, accuracy
    while high - low > 1e-4:
        middle = (low + high) / 2
        if gate_power(middle, n, correct, threshold, policy, discordance) >= power:
            high = middle
        else:
            low = middle
    return round(high, 4)
