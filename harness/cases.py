"""The unit of the suite: a case is one frozen (model, evaluation setting) value.

`expand_cases` crosses every configured model with its benchmark's settings: the clean split, each natural
shift, and the settings of every registered shift kind (harness.settings.SHIFT_KINDS; the built-in kinds register
in their modules: corruptions, transforms and sequences in harness.shifts, attacks and transfer attacks in
harness.attacks, minimal perturbations in harness.minimal, typographic attacks in harness.shifts.typographic).
"""
from __future__ import annotations

import dataclasses

from . import attacks, minimal  # noqa: F401  (register the attack, transfer and minimal-perturbation kinds)
from .config import ConfigError, SuiteConfig
from .data import get_benchmark
from .models import resolve
from .records import CATEGORIES, CLEAN_NAME
from .settings import SHIFT_KINDS, Setting, SettingScope
from .shifts import corruptions, perturbations, typographic  # noqa: F401  (register their shift kinds)

__all__ = ["CATEGORIES", "CLEAN_NAME", "Case", "Setting", "expand_cases", "settings_for"]


@dataclasses.dataclass(frozen=True)
class Case:
    model: str
    line: str
    benchmark: str
    setting: Setting

    @property
    def id(self) -> str:
        return f"{self.line}-{self.setting.name}"


def settings_for(benchmark_name: str, config: SuiteConfig, model: str) -> list[Setting]:
    """The settings of one model: its benchmark's clean split and natural shifts, then every shift kind's."""
    benchmark = get_benchmark(benchmark_name)
    clean = benchmark.clean_split
    settings = [Setting("clean", CLEAN_NAME, clean, config.samples_for("clean"))]
    settings += [Setting("natural", shift.name, shift.split, config.samples_for("natural"), k=shift.k,
                         id_split=shift.id_split) for shift in benchmark.natural_shifts]
    scope = SettingScope(config, model, benchmark_name, clean)
    for kind in SHIFT_KINDS.values():
        settings += kind(scope)
    return settings


def expand_cases(config: SuiteConfig) -> list[Case]:
    """Every case of the run: each configured model crossed with its benchmark's settings, in a stable order."""
    cases = []
    for text in config.models:
        model_id, family = resolve(text)
        benchmark = family.benchmark(model_id)
        cases += [Case(text, model_id.line, benchmark, setting)
                  for setting in settings_for(benchmark, config, text)]
    ids = [case.id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"two models share a model line, so their case ids collide: {', '.join(duplicates[:5])}")
    return cases
