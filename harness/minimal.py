"""Minimal adversarial perturbation per sample, by binary search over a bounded attack's budget (RoZ's protocol).

RoZ (Wang et al. 2024; wang-research-lab/roz, `attack_one_sample`) scores an attack by the smallest eps that flips
each sample and reports the median over samples. Here, for a bounded attack `<attack>-<norm>-<max eps>` (setting
`minimal-pgd-linf-8/255`), each sample's value is:
- 0 when the model misclassifies it clean (RoZ does the same);
- None ("above max", +inf in computations) when the attack at the maximum budget leaves it correct;
- otherwise the smallest budget found to flip it: `bisections` halvings of [0, max] (precision max / 2**bisections),
  each step attacking the sample at the midpoint and keeping the half where the flip lies. An attack's success is
  not strictly monotone in eps, so this is the smallest flipping budget on the search's path: an upper bound of
  the true minimal perturbation under that attack, at the stated precision.
The case's per-sample bits are "robust at max"; its metrics hold the values, their median with a seeded bootstrap
interval, and the share robust at max. The gate (harness.gate) adds a paired test on the values.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from .attacks import AttackSpec, configured_attack, run_attack
from .settings import Setting, SettingScope, config_error, register_shift_kind
from .shifts.base import Inputs, Perturbation, Scored, Scorer

BOOTSTRAP_RESAMPLES = 2000


def minimal_eps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec, bisections: int,
                seed: int) -> torch.Tensor:
    """float64 (N,) on the CPU: each image's smallest flipping budget under `spec`'s attack in (0, spec.eps], in
    the spec's units; 0 for images misclassified clean, +inf for images still correct at spec.eps. Images are
    (N, 3, H, W) in [0, 1]; the attack at budget b draws from `seed` and b."""
    outcome = run_attack(model, images, labels, spec, _seed_at(seed, spec.eps))
    values = torch.full((len(images),), float("inf"), dtype=torch.float64)
    values[~outcome.clean_correct.cpu()] = 0.0
    searching = (outcome.clean_correct & ~outcome.robust).cpu()
    low = torch.zeros(len(images), dtype=torch.float64)
    high = torch.full((len(images),), spec.eps, dtype=torch.float64)
    for _ in range(bisections):
        middle = (low + high) / 2
        flipped = torch.zeros(len(images), dtype=torch.bool)
        for budget in torch.unique(middle[searching]).tolist():
            group = (searching & (middle == budget)).nonzero().squeeze(1)
            part = run_attack(model, images[group.to(images.device)], labels[group.to(labels.device)],
                              spec.at(budget), _seed_at(seed, budget))
            flipped[group] = ~part.robust.cpu()
        high = torch.where(searching & flipped, middle, high)
        low = torch.where(searching & ~flipped, middle, low)
    values[searching] = high[searching]
    return values


def _seed_at(seed: int, budget: float) -> int:
    return seed * 1_000_003 + int(round(budget * 2**24))


def median_interval(values: np.ndarray, seed: int, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of `values` (which may hold +inf), BOOTSTRAP_RESAMPLES
    resamples from `seed`. The bounds are resampled medians themselves (no interpolation between them), so a
    bound is +inf when those medians are."""
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, values.size, (BOOTSTRAP_RESAMPLES, values.size))], axis=1)
    tail = (1 - confidence) / 2
    return (float(np.quantile(medians, tail, method="inverted_cdf")),
            float(np.quantile(medians, 1 - tail, method="inverted_cdf")))


def _finite_or_none(value: float) -> float | None:
    return None if np.isinf(value) else round(float(value), 9)


def summary(values: np.ndarray, spec: AttackSpec, bisections: int, seed: int) -> dict[str, Any]:
    """The case's metrics: `median_eps` with its 95% bootstrap `median_interval95` (None: above the maximum),
    `robust_at_max` (share of samples), the search's `max_eps` and `precision`, in the spec's units."""
    lo, hi = median_interval(values, seed)
    units = "pixels" if spec.space == "pixel" else f"{spec.space} normalized space"
    return {"median_eps": _finite_or_none(np.median(values)),
            "median_interval95": [_finite_or_none(lo), _finite_or_none(hi)],
            "robust_at_max": float(np.isinf(values).mean()), "max_eps": spec.eps,
            "precision": spec.eps / 2**bisections, "units": f"{spec.norm} norm, {units}"}


@dataclasses.dataclass(frozen=True)
class MinimalPerturbation(Perturbation):
    """Each sample's minimal flipping budget under `spec`'s attack, up to `spec.eps`, by `bisections` halvings."""

    spec: AttackSpec
    bisections: int

    def record(self) -> dict[str, Any]:
        return {"minimal": self.spec.as_dict() | {"bisections": self.bisections,
                                                  "precision": self.spec.eps / 2**self.bisections}}

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        values = scorer.minimal(inputs, self.spec, self.bisections)
        return Scored(np.isinf(values), values=values)

    def summarize(self, scored: Scored) -> dict[str, Any]:
        return summary(scored.values, self.spec, self.bisections, seed=0)

    @property
    def metric(self) -> str:
        return "robust-at-max"

    @property
    def autocast(self) -> bool:
        return False


@register_shift_kind("minimal")
def minimal_settings(scope: SettingScope) -> list[Setting]:
    """`minimal-<spec>` per configured bounded attack (`adversarial.minimal`), on the clean split."""
    settings = []
    for text in scope.config.minimal:
        spec = configured_attack(scope.config, "adversarial.minimal", text)
        if not spec.bounded or spec.components:
            raise config_error("adversarial.minimal", ValueError(
                f"{text!r}: a minimal perturbation is searched with one bounded attack (pgd, apgd-ce, ...), not a "
                f"minimum-norm attack or a worst case"))
        settings.append(Setting("adversarial", f"minimal-{spec.name}", scope.clean_split,
                                scope.config.samples_for("adversarial", "minimal"),
                                perturbation=MinimalPerturbation(spec, scope.config.minimal_bisections)))
    return settings
