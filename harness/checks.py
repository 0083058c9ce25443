"""Run-level validity checks over merged cases: accuracy must not rise with the dose of a perturbation.

A stronger attack (larger eps) or a harsher corruption (higher severity) of the same kind, on the same samples,
may not score above the weaker one's 95% interval: when it does, the attack or the corruption is broken.
Corruptions whose severity levels are not one growing dose (NOT_A_DOSE) are not checked.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from .records import CaseRecord


# ImageNet-C severities that are not one dose of one perturbation (Hendrycks & Dietterich 2019, imagecorruptions):
# saturate desaturates at severities 1-2 and oversaturates at 3-5; spatter is water at 1-3 and mud at 4-5.
NOT_A_DOSE = frozenset({"saturate", "spatter"})


def _dose(case: CaseRecord) -> tuple[tuple, float] | None:
    setting = case.setting
    if "attack" in setting:
        attack = setting["attack"]
        return (case.model, "attack", attack["attack"], attack["norm"], setting.get("surrogate")), attack["eps"]
    if "corruption" in setting and setting["corruption"]["name"] not in NOT_A_DOSE:
        corruption = setting["corruption"]
        return (case.model, "corruption", corruption["name"]), corruption["severity"]
    return None


def dose_response_violations(cases: Iterable[CaseRecord]) -> list[str]:
    """Messages naming each (weaker, stronger) pair whose stronger member scores above the weaker's interval."""
    ladders: dict[tuple, list[tuple[float, CaseRecord]]] = defaultdict(list)
    for case in cases:
        dose = _dose(case)
        if dose is not None and case.accuracy is not None and case.interval95:
            ladders[dose[0]].append((dose[1], case))
    problems = []
    for ladder in ladders.values():
        ladder.sort(key=lambda item: item[0])
        for (_, weaker), (_, stronger) in zip(ladder, ladder[1:]):
            if stronger.accuracy > weaker.interval95[1]:
                problems.append(f"{stronger.id}: accuracy {stronger.accuracy:.4f} is above the 95% interval of "
                                f"the weaker {weaker.id} ({weaker.interval95[0]:.4f}, "
                                f"{weaker.interval95[1]:.4f}): accuracy must not rise with the dose")
    return problems
