"""The decision of one case against its baseline: passed, regressed, or not comparable (and why).

Rule (one-sided: an improvement never fails):
- always: regressed when accuracy < the baseline's recorded threshold (Wilson lower bound minus margin);
- when the baseline holds per-sample correctness for the same samples (the protocol guard ensures it): also
  regressed when the drop exceeds the margin and the exact McNemar test on the discordant pairs says "worse"
  at the policy's confidence;
- with a flip-rate limit: also regressed when (correct->wrong + wrong->correct) / n exceeds it;
- for a setting that measures a value per sample (a minimal perturbation): also regressed when, over the samples
  correct clean in both runs, the median value fell by more than half the measurement's precision and the
  one-sided Wilcoxon signed-rank test on the pairs says "lower" at the policy's confidence.

Not comparable (protocol-mismatch) when the setting, the seed or the evaluated pixels differ from the baseline's;
for a library corruption, when its recipe differs (a library version is named with both versions). Under the
same recipe, other bytes are a pixel drift: recorded and shown, and the rule above still decides.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from .baselines import is_seeded, threshold_for
from .config import GatePolicy
from .metrics import attacked_pairs, mcnemar_worse_p, values_lower_p
from .pixels import PixelDrift, pixel_drift
from .records import CaseRecord, Status, decode_bits, decode_values
from .sensitivity import detectable_drop

PROTOCOL_FIELDS = ("setting", "data_sha256", "seed")
RECIPE_PROTOCOL_FIELDS = ("setting", "seed")
_NO_PAIRED_TEST = 1.0  # a margin no drop exceeds: a seeded case fails on its threshold alone


@dataclasses.dataclass(frozen=True)
class GateDecision:
    status: Status
    message: str
    baseline: float | None = None
    threshold: float | None = None
    flips: dict[str, int] | None = None
    p_value: float | None = None
    pixel_drift: PixelDrift | None = None
    detectable_drop: float | None = None  # smallest drop failing this case with 80% power (harness.sensitivity)

    @property
    def ok(self) -> bool:
        return self.status.ok


def _recipe(record: CaseRecord) -> Mapping[str, Any] | None:
    return (record.data or {}).get("pixel_recipe")


def _recipe_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    differ = []
    for key in sorted(set(ours) | set(theirs)):
        if key == "libraries":
            libraries_now, libraries_then = ours.get(key, {}), theirs.get(key, {})
            differ += [f"library {name}: baseline {libraries_then.get(name)}, now {libraries_now.get(name)}"
                       for name in sorted(set(libraries_now) | set(libraries_then))
                       if libraries_now.get(name) != libraries_then.get(name)]
        elif ours.get(key) != theirs.get(key):
            differ.append(f"pixel_recipe.{key}: baseline {theirs.get(key)!r}, now {ours.get(key)!r}")
    return differ


def protocol_differences(record: CaseRecord, entry: Mapping[str, Any]) -> list[str]:
    """What differs between the protocol of a measured record and its baseline entry ([] when comparable).

    Pixels the project computes are compared by their hash (`data_sha256`): they are the same bytes on every
    CPU. A library corruption whose baseline holds its recipe is compared by the recipe instead."""
    by_recipe = _recipe(record) is not None and "pixel_recipe" in entry
    differ = []
    for field in RECIPE_PROTOCOL_FIELDS if by_recipe else PROTOCOL_FIELDS:
        ours, theirs = getattr(record, field), entry[field]
        if isinstance(ours, dict) and isinstance(theirs, dict):
            differ += [f"{field}.{key}: baseline {theirs.get(key)!r}, now {ours.get(key)!r}"
                       for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
        elif ours != theirs:
            differ.append(f"{field}: baseline {theirs!r}, now {ours!r}")
    if by_recipe:
        differ += _recipe_differences(_recipe(record), entry["pixel_recipe"])
    return differ


def _mismatch_fix(differ: list[str], record_command: str) -> str:
    if any(item.startswith("library ") for item in differ):
        return ("Install the locked environment (`make install`, from requirements.lock) so these libraries match "
                "the baseline's; if the lock itself moved, review the new pixels and re-record with "
                f"`{record_command}` (README, \"Portability\")")
    if any(item.startswith("data_sha256") for item in differ) and not any(
            item.startswith(("setting", "seed")) for item in differ):
        return ("These pixels are computed exactly on every CPU, so other bytes mean other data or other code: "
                "check the dataset and the harness version; re-record only after reviewing why they changed, with "
                f"`{record_command}`")
    return f"Run with the baseline's settings, or re-record it with `{record_command}`"


def flips(now: np.ndarray, before: np.ndarray) -> dict[str, int]:
    return {"to_wrong": int((before & ~now).sum()), "to_right": int((~before & now).sum())}


def _decide_seeded(record: CaseRecord, entry: Mapping[str, Any], max_flip_rate: float | None) -> GateDecision:
    """Unpaired: a published figure has neither per-sample outcomes nor a data hash to guard the protocol, so a
    flip-rate limit cannot be checked against it and the case is not comparable under one."""
    accuracy, threshold, n = record.accuracy, entry["threshold"], record.n
    lo, hi = record.interval95
    summary = (f"accuracy {accuracy:.4f} [95% CI {lo:.4f}, {hi:.4f}], n={n}; baseline {entry['accuracy']:.4f} "
               f"seeded from {entry['seeded_from']} (published, not measured here), threshold {threshold:.4f}")
    if max_flip_rate is not None:
        return GateDecision(Status.PROTOCOL_MISMATCH, (
            f"{record.id}: --max-flip-rate {max_flip_rate} needs per-sample outcomes, and this baseline is a "
            f"published figure without them: {summary}. Record a measured baseline with --update-baselines, or run "
            f"without --max-flip-rate"), entry["accuracy"], threshold)
    detectable = detectable_drop(n, round(entry["accuracy"] * n), threshold,
                                 GatePolicy(entry["policy"]["confidence"], _NO_PAIRED_TEST))
    if accuracy < threshold:
        return GateDecision(Status.REGRESSED, f"{record.id}: REGRESSION (accuracy below threshold): {summary}",
                            entry["accuracy"], threshold, detectable_drop=detectable)
    return GateDecision(Status.PASSED, f"{record.id}: {summary}", entry["accuracy"], threshold,
                        detectable_drop=detectable)


def record_decision(record: CaseRecord, entry: Mapping[str, Any] | None, policy: GatePolicy) -> GateDecision:
    """The decision of a case measured to (re)write its baseline: `recorded`, with the drop its new entry detects."""
    detectable = detectable_drop(record.n, record.correct, threshold_for(record.correct, record.n, policy), policy)
    return GateDecision(Status.RECORDED, f"{record.id}: recorded accuracy {record.accuracy:.4f}",
                        entry and entry["accuracy"], entry and entry["threshold"], detectable_drop=detectable)


def judged(record: CaseRecord, decision: GateDecision, **where: Any) -> CaseRecord:
    """`record` with `decision`'s verdict; `where` adds worker fields (worker, worker_peak_rss_mb, worker_rss_mb)."""
    return dataclasses.replace(
        record, status=decision.status, baseline=decision.baseline, threshold=decision.threshold,
        delta=None if decision.baseline is None else round(record.accuracy - decision.baseline, 6),
        flips=decision.flips, mcnemar_p=decision.p_value, message=decision.message,
        pixel_drift=None if decision.pixel_drift is None else decision.pixel_drift.as_dict(),
        detectable_drop=decision.detectable_drop, **where)


def _eps(value: float) -> str:
    return "above the maximum" if np.isinf(value) else f"{value:.5g} (= {value * 255:.3g}/255)"


def _values_change(record: CaseRecord, entry: Mapping[str, Any], alpha: float) -> tuple[str, list[str]]:
    """The summary and the regression reasons of a per-sample value (a minimal perturbation) against its
    baseline's; nothing for a setting without values."""
    now = record.values()
    if now is None or "per_sample_values" not in entry:
        return "", []
    before = decode_values(entry["per_sample_values"], entry["n"])
    pairs = attacked_pairs(now, before)
    if not pairs.any():
        return "; no sample is correct clean in both runs, so no minimal perturbation to compare", []
    now, before = now[pairs], before[pairs]
    p_value = values_lower_p(now, before)
    median_now, median_before = float(np.median(now)), float(np.median(before))
    summary = (f"; median minimal eps over the {int(pairs.sum())} samples correct clean in both runs "
               f"{_eps(median_now)} (baseline {_eps(median_before)}), signed-rank p={p_value:.3g}")
    tolerance = (record.metrics or {}).get("precision", 0.0) / 2
    if median_now < median_before - tolerance and p_value < alpha:
        return summary, [f"median minimal perturbation fell from {_eps(median_before)} to {_eps(median_now)} "
                         f"(paired signed-rank p={p_value:.3g} < {alpha:.3g})"]
    return summary, []


def decide(record: CaseRecord, entry: Mapping[str, Any] | None, baseline_file: str,
           record_command: str, max_flip_rate: float | None = None) -> GateDecision:
    """Gate a measured case record against its baseline `entry` (None when the baseline has no such case)."""
    accuracy, n = record.accuracy, record.n
    if entry is None:
        return GateDecision(Status.NO_BASELINE, (
            f"{record.id}: no baseline for case {record.key!r} in {baseline_file} "
            f"(measured accuracy {accuracy:.4f}, n={n}). Record one with `{record_command}`, "
            f"review the diff and commit {baseline_file}."))
    if is_seeded(entry):
        return _decide_seeded(record, entry, max_flip_rate)
    differ = protocol_differences(record, entry)
    if differ:
        return GateDecision(Status.PROTOCOL_MISMATCH, (
            f"{record.id}: measured under another protocol than its baseline in {baseline_file}, so the "
            f"numbers are not comparable: " + "; ".join(differ) + f". {_mismatch_fix(differ, record_command)}."),
            baseline=entry["accuracy"], threshold=entry["threshold"])
    drift = None
    if record.data_sha256 != entry["data_sha256"]:  # only reachable under an unchanged pixel recipe
        drift = pixel_drift(record.data["image_digests"], entry["image_digests"])

    threshold, policy = entry["threshold"], entry["policy"]
    changed = flips(record.bits(), decode_bits(entry["per_sample"], entry["n"]))
    p_value = mcnemar_worse_p(changed["to_wrong"], changed["to_right"])
    detectable = detectable_drop(entry["n"], entry["correct"], threshold, GatePolicy(**policy),
                                 (changed["to_wrong"] + changed["to_right"]) / n)
    drop = entry["accuracy"] - accuracy
    lo, hi = record.interval95
    summary = (f"accuracy {accuracy:.4f} [95% CI {lo:.4f}, {hi:.4f}], n={n}; baseline {entry['accuracy']:.4f}, "
               f"threshold {threshold:.4f}, delta {-drop:+.4f}; flips {changed['to_wrong']} correct->wrong, "
               f"{changed['to_right']} wrong->correct, McNemar p={p_value:.3g}")
    summary += (f"; detects a drop of {detectable:.4f} with 80% power at this discordance" if detectable is not None
                else "; cannot detect any drop at this n (record more samples)")
    if drift is not None:
        summary += (f"; pixel drift under the same recipe: {drift.describe()} (CPU-dependent library kernels; "
                    f"the paired test decides)")
    reasons = []
    if accuracy < threshold:
        reasons.append(f"accuracy below threshold {threshold:.4f}")
    if drop > policy["margin"] and p_value < 1 - policy["confidence"]:
        reasons.append(f"paired drop of {drop:.4f} > margin {policy['margin']} is significant "
                       f"(p={p_value:.3g} < {1 - policy['confidence']:.3g})")
    flip_rate = (changed["to_wrong"] + changed["to_right"]) / n
    if max_flip_rate is not None and flip_rate > max_flip_rate:
        reasons.append(f"flip rate {flip_rate:.4f} > --max-flip-rate {max_flip_rate}")
    values_summary, values_reason = _values_change(record, entry, 1 - policy["confidence"])
    summary += values_summary
    reasons += values_reason
    status = Status.REGRESSED if reasons else Status.PASSED
    message = f"{record.id}: " + (f"REGRESSION ({'; '.join(reasons)}): " if reasons else "") + summary
    return GateDecision(status, message, entry["accuracy"], threshold, changed, p_value, drift, detectable)
