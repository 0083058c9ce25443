"""Scores and intervals: per-sample correctness -> accuracy with a Wilson interval; pm-k over frame sequences."""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from . import binomial


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
    return float(binomial.sf(to_wrong - 1, discordant, 0.5))


def attacked_pairs(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """bool (n,): the samples with a minimal perturbation (a value above 0, +inf included) in both runs, i.e.
    correct clean in both; a sample wrong clean scores 0 and is the clean case's business."""
    return (now > 0) & (before > 0)


def values_lower_p(now: np.ndarray, before: np.ndarray) -> float:
    """One-sided p-value that paired values `now` are lower than `before` (float (n,), +inf allowed and ranked
    above every finite value): the Wilcoxon signed-rank test on the pairs that differ, exact below 50 of them;
    1.0 when no pair differs."""
    from scipy.stats import rankdata, wilcoxon

    ranked = rankdata(np.concatenate([now, before])).reshape(2, -1)  # ranks keep +inf's order, not its value
    differences = ranked[0] - ranked[1]
    differences = differences[differences != 0]  # dropped here, so scipy may use the exact distribution
    if not differences.size:
        return 1.0
    return float(wilcoxon(differences, alternative="less").pvalue)


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


# AlexNet's top-1 error per ImageNet-C corruption, averaged over severities 1-5, as published by Hendrycks and
# Dietterich 2019 ("Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", the
# normalizer of mCE), with its clean ImageNet error for relative mCE. (The ImageNet testbed's own AlexNet run,
# ../shared/reference/imagenet_testbed_top1s.csv, differs by up to 3 points: another preprocessing.)
ALEXNET_CORRUPTION_ERROR = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
    "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572,
    "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
ALEXNET_CLEAN_ERROR = 1 - 0.56522  # AlexNet "val" top-1 in ../shared/reference (ImageNet testbed): 56.522%


def corruption_summary(accuracy: dict[str, dict[int, float]], clean_accuracy: float | None,
                       normalize_by_alexnet: bool) -> dict[str, Any]:
    """mCE-style summary of one model from `accuracy[corruption][severity]` (fractions).

    CE_c = mean over severities of the error (unnormalized), for every corruption given; the mCE values average over
    the 15 benchmark corruptions only (the 4 validation corruptions are held out, as in ImageNet-C); normalized
    CE_c divides by AlexNet's (ImageNet only); relative CE_c subtracts the clean error first. Accuracy per severity
    is averaged over the benchmark corruptions.
    """
    all_errors = {c: sum(1 - a for a in by_severity.values()) / len(by_severity)
                  for c, by_severity in accuracy.items()}
    errors = {c: e for c, e in all_errors.items() if c in ALEXNET_CORRUPTION_ERROR}
    accuracy = {c: a for c, a in accuracy.items() if c in ALEXNET_CORRUPTION_ERROR}
    severities = sorted({s for by_severity in accuracy.values() for s in by_severity})
    summary: dict[str, Any] = {
        "corruption_error": {c: round(e, 6) for c, e in sorted(all_errors.items())},
        "mce_unnormalized": round(sum(errors.values()) / len(errors), 6) if errors else None,
        "accuracy_by_severity": {str(s): round(sum(a[s] for a in accuracy.values() if s in a) /
                                               sum(1 for a in accuracy.values() if s in a), 6) for s in severities},
    }
    if normalize_by_alexnet and errors:
        summary["mce"] = round(sum(e / ALEXNET_CORRUPTION_ERROR[c] for c, e in errors.items()) / len(errors), 6)
        if clean_accuracy is not None:
            clean_error = 1 - clean_accuracy
            summary["relative_mce"] = round(sum(
                (e - clean_error) / (ALEXNET_CORRUPTION_ERROR[c] - ALEXNET_CLEAN_ERROR) for c, e in errors.items())
                / len(errors), 6)
    return summary
