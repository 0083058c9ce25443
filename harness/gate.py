"""The decision of one case against its baseline: passed, regressed, or not comparable (and why).

Rule (one-sided: an improvement never fails):
- always: regressed when accuracy < the baseline's recorded threshold (Wilson lower bound minus margin);
- when the baseline holds per-sample correctness for the same samples (the protocol guard ensures it): also
  regressed when the drop exceeds the margin and the exact McNemar test on the discordant pairs says "worse"
  at the policy's confidence;
- with a flip-rate limit: also regressed when (correct->wrong + wrong->correct) / n exceeds it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from .baselines import decode_bits, is_seeded
from .metrics import mcnemar_worse_p

PROTOCOL_FIELDS = ("setting", "data_sha256", "seed")


@dataclasses.dataclass(frozen=True)
class GateDecision:
    status: str  # passed | regressed | no-baseline | protocol-mismatch | recorded
    message: str
    baseline: float | None = None
    threshold: float | None = None
    flips: dict[str, int] | None = None
    p_value: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "recorded")


def protocol_differences(record: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    """What differs between the protocol of a measured record and its baseline entry ([] when comparable)."""
    differ = []
    for field in PROTOCOL_FIELDS:
        ours, theirs = record[field], entry[field]
        if isinstance(ours, dict) and isinstance(theirs, dict):
            differ += [f"{field}.{key}: baseline {theirs.get(key)!r}, now {ours.get(key)!r}"
                       for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key)]
        elif ours != theirs:
            differ.append(f"{field}: baseline {theirs!r}, now {ours!r}")
    return differ


def flips(now: np.ndarray, before: np.ndarray) -> dict[str, int]:
    return {"to_wrong": int((before & ~now).sum()), "to_right": int((~before & now).sum())}


def _decide_seeded(record: Mapping[str, Any], entry: Mapping[str, Any], max_flip_rate: float | None) -> GateDecision:
    """Unpaired: a published figure has neither per-sample outcomes nor a data hash to guard the protocol."""
    accuracy, threshold = record["accuracy"], entry["threshold"]
    lo, hi = record["interval95"]
    summary = (f"accuracy {accuracy:.4f} [95% CI {lo:.4f}, {hi:.4f}], n={record['n']}; baseline {entry['accuracy']:.4f} "
               f"seeded from {entry['seeded_from']} (published, not measured here), threshold {threshold:.4f}")
    if accuracy < threshold:
        return GateDecision("regressed", f"{record['id']}: REGRESSION (accuracy below threshold): {summary}",
                            entry["accuracy"], threshold)
    return GateDecision("passed", f"{record['id']}: {summary}", entry["accuracy"], threshold)


def decide(record: Mapping[str, Any], entry: Mapping[str, Any] | None, baseline_file: str,
           record_command: str, max_flip_rate: float | None = None) -> GateDecision:
    """Gate a measured case record against its baseline `entry` (None when the baseline has no such case)."""
    accuracy, n = record["accuracy"], record["n"]
    if entry is None:
        return GateDecision("no-baseline", (
            f"{record['id']}: no baseline for case {record['key']!r} in {baseline_file} "
            f"(measured accuracy {accuracy:.4f}, n={n}). Record one with `{record_command}`, "
            f"review the diff and commit {baseline_file}."))
    if is_seeded(entry):
        return _decide_seeded(record, entry, max_flip_rate)
    differ = protocol_differences(record, entry)
    if differ:
        return GateDecision("protocol-mismatch", (
            f"{record['id']}: measured under another protocol than its baseline in {baseline_file}, so the "
            f"numbers are not comparable: " + "; ".join(differ) +
            f". Run with the baseline's settings, or re-record it with `{record_command}`."),
            baseline=entry["accuracy"], threshold=entry["threshold"])

    threshold, policy = entry["threshold"], entry["policy"]
    changed = flips(decode_bits(record["per_sample"], n), decode_bits(entry["per_sample"], entry["n"]))
    p_value = mcnemar_worse_p(changed["to_wrong"], changed["to_right"])
    drop = entry["accuracy"] - accuracy
    lo, hi = record["interval95"]
    summary = (f"accuracy {accuracy:.4f} [95% CI {lo:.4f}, {hi:.4f}], n={n}; baseline {entry['accuracy']:.4f}, "
               f"threshold {threshold:.4f}, delta {-drop:+.4f}; flips {changed['to_wrong']} correct->wrong, "
               f"{changed['to_right']} wrong->correct, McNemar p={p_value:.3g}")
    reasons = []
    if accuracy < threshold:
        reasons.append(f"accuracy below threshold {threshold:.4f}")
    if drop > policy["margin"] and p_value < 1 - policy["confidence"]:
        reasons.append(f"paired drop of {drop:.4f} > margin {policy['margin']} is significant "
                       f"(p={p_value:.3g} < {1 - policy['confidence']:.3g})")
    flip_rate = (changed["to_wrong"] + changed["to_right"]) / n
    if max_flip_rate is not None and flip_rate > max_flip_rate:
        reasons.append(f"flip rate {flip_rate:.4f} > --max-flip-rate {max_flip_rate}")
    status = "regressed" if reasons else "passed"
    message = f"{record['id']}: " + (f"REGRESSION ({'; '.join(reasons)}): " if reasons else "") + summary
    return GateDecision(status, message, entry["accuracy"], threshold, changed, p_value)
