"""Scores and intervals: per-sample correctness -> accuracy with a Wilson interval; pm-k over frame sequences."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from scipy.stats import binomtest


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for a binomial proportion `correct / n`, clipped to [0, 1]."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs n >= 1, got n={n}")
    if not 0 <= correct <= n:
        raise ValueError(f"wilson_interval needs 0 <= correct <= n, got correct={correct}, n={n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def wilson_lower_one_sided(correct: int, n: int, confidence: float) -> float:
    """One-sided lower Wilson bound: the true accuracy is above it with probability `confidence`."""
    return wilson_interval(correct, n, 2 * confidence - 1)[0]


def mcnemar_worse_p(to_wrong: int, to_right: int) -> float:
    """Exact one-sided McNemar p-value that the new model is worse on the same samples.

    Under "no change" each discordant pair is equally likely to go either way, so the count of correct -> wrong
    flips among all discordant pairs is Binomial(to_wrong + to_right, 1/2); returns P(X >= to_wrong).
    """
    discordant = to_wrong + to_right
    if discordant == 0:
        return 1.0
    return float(binomtest(to_wrong, discordant, 0.5, alternative="greater").pvalue)


def pm_k_correct(frame_correct: np.ndarray, k: int) -> np.ndarray:
    """pm-k correctness of frame sequences (ImageNet-Vid-Robust): all frames within k of the anchor are correct.

    `frame_correct` is bool (N, F) with the anchor at F // 2; returns bool (N,).
    """
    if frame_correct.ndim != 2:
        raise ValueError(f"pm_k_correct expects (N, F) correctness, got shape {frame_correct.shape}")
    anchor = frame_correct.shape[1] // 2
    if not 0 <= k <= anchor:
        raise ValueError(f"pm-{k} needs 0 <= k <= {anchor} for sequences of {frame_correct.shape[1]} frames")
    return frame_correct[:, anchor - k: anchor + k + 1].all(axis=1)
