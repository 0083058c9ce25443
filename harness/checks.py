"""Run-level validity checks over merged cases; a violation fails the run (harness.controller).

- Dose response: a stronger attack (larger eps) or a harsher corruption (higher severity) of the same kind, on
  the same samples, may not score above the weaker one: when it scores above the weaker's 95% interval and an
  exact McNemar test on the samples the two judged differently says it is better (p < DOSE_ALPHA, 0.05), the
  attack or the corruption is broken. The paired test keeps small runs honest: at n = 50, 0.96 then 1.00 (two
  samples that only the harsher setting got right) is noise, p = 0.25; at n = 200, 0.50 then 0.60 is not. Corruptions whose severity levels
  are not one growing dose (NOT_A_DOSE) are not checked.
- Gradient masking (Carlini et al. 2019, "On Evaluating Adversarial Robustness", section 5): a black-box attack
  may not leave significantly fewer samples robust than the white-box attacks at the same norm, budget and
  space. A case's samples are the first n of its split (the loaders' samples are prefixes, the same for every
  case of a model), so the two are compared pairwise on the shorter prefix: exact McNemar on the samples where
  exactly one side broke the model, at MASKING_ALPHA.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from .metrics import mcnemar_worse_p
from .records import CaseRecord

MASKING_ALPHA = 0.01
DOSE_ALPHA = 0.05


# ImageNet-C severities that are not one dose of one perturbation (Hendrycks & Dietterich 2019, imagecorruptions):
# saturate desaturates at severities 1-2 and oversaturates at 3-5; spatter is water at 1-3 and mud at 4-5.
NOT_A_DOSE = frozenset({"saturate", "spatter"})


def _dose(case: CaseRecord) -> tuple[tuple, float] | None:
    setting = case.setting
    if "attack" in setting:
        attack = setting["attack"]
        return ((case.model, "attack", attack["attack"], attack["norm"], attack.get("space"), setting.get("surrogate")),
                attack["eps"])
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
            if stronger.accuracy <= weaker.interval95[1]:
                continue
            n = min(weaker.n, stronger.n)
            weak, strong = weaker.bits()[:n], stronger.bits()[:n]
            only_stronger, only_weaker = int((strong & ~weak).sum()), int((weak & ~strong).sum())
            p_value = mcnemar_worse_p(only_stronger, only_weaker)
            if p_value < DOSE_ALPHA:
                problems.append(f"{stronger.id}: accuracy {stronger.accuracy:.4f} is above the 95% interval of "
                                f"the weaker {weaker.id} ({weaker.interval95[0]:.4f}, "
                                f"{weaker.interval95[1]:.4f}), and on the same {n} samples it got {only_stronger} "
                                f"right that the weaker got wrong against {only_weaker} the other way (McNemar "
                                f"p={p_value:.3g} < {DOSE_ALPHA}): accuracy must not rise with the dose")
    return problems


def _budget(case: CaseRecord) -> tuple[tuple, dict] | None:
    attack = case.setting.get("attack")
    if attack is None or case.setting.get("surrogate") is not None or not case.measured or attack.get("components"):
        return None
    return (case.model, case.setting["split"], attack["norm"], attack["eps"], attack.get("space", "pixel")), attack


def masking_violations(cases: Iterable[CaseRecord]) -> list[str]:
    """Messages naming each black-box case that left significantly fewer samples robust than the white-box
    attacks at its norm, budget and space: a sample counts as robust to the white box only if every bounded
    white-box attack of the run left it robust (their per-sample worst case), so a weak one (FGSM) is no
    excuse. Compared on the samples both measured (the shorter prefix)."""
    white: dict[tuple, list[CaseRecord]] = defaultdict(list)
    black: list[tuple[tuple, CaseRecord]] = []
    for case in cases:
        budget = _budget(case)
        if budget is None:
            continue
        key, attack = budget
        if not attack["white_box"]:
            black.append((key, case))
        elif not attack["minimum_norm"]:
            white[key].append(case)
    problems = []
    for key, blind in black:
        sighted = white.get(key)
        if not sighted:
            continue
        n = min([blind.n] + [case.n for case in sighted])
        theirs = np.logical_and.reduce([case.bits()[:n] for case in sighted])
        ours = blind.bits()[:n]
        broke_only_black, broke_only_white = int((theirs & ~ours).sum()), int((ours & ~theirs).sum())
        p_value = mcnemar_worse_p(broke_only_black, broke_only_white)
        if p_value < MASKING_ALPHA:
            names = ", ".join(case.id for case in sighted)
            problems.append(
                f"GRADIENT MASKING suspected: {blind.id} (black box) leaves {int(ours.sum())}/{n} robust, the "
                f"white-box attacks at its budget ({names}) {int(theirs.sum())} of the same {n} in their per-sample "
                f"worst case; the black-box attack broke {broke_only_black} samples none of them did (and "
                f"{broke_only_white} the other way), McNemar p={p_value:.3g} < {MASKING_ALPHA}: the white-box "
                f"gradients do not reach the input, so their robust accuracy overstates robustness")
    return problems
