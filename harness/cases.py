"""The unit of the suite: a case is one frozen (model, evaluation setting) value.

`expand_cases` crosses every configured model with its benchmark's settings: the clean split, each natural
shift, and the settings of every registered shift kind (harness.settings.SHIFT_KINDS; the built-in kinds register
in their modules: corruptions, transforms and sequences in harness.shifts, attacks and transfer attacks in
harness.attacks, minimal perturbations in harness.minimal, typographic attacks in harness.shifts.typographic).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from . import attacks, minimal  # noqa: F401  (register the attack, transfer and minimal-perturbation kinds)
from .config import ConfigError, SuiteConfig
from .data import BENCHMARKS, get_benchmark
from .models import resolve
from .models.registry import is_zero_shot
from .prompts import Prompts, PromptsError, configured_prompts
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


def model_benchmark(text: str, config: SuiteConfig) -> str:
    """The benchmark model `text` is evaluated on: `config.benchmark` when set, else its family's own. Only a
    zero-shot family (one whose `zero_shot` is true: it builds its head from any benchmark's class names) may be
    moved to another benchmark; a supervised classifier knows only its own classes."""
    model_id, family = resolve(text)
    own = family.benchmark(model_id)
    if not config.benchmark or config.benchmark == own:
        return own
    if config.benchmark not in BENCHMARKS:
        raise ConfigError(f"benchmark {config.benchmark!r} (--benchmark or [tool.robustness] benchmark) is not "
                          f"registered; known: {', '.join(BENCHMARKS.names())}")
    if not is_zero_shot(family):
        raise ConfigError(f"{text} is evaluated on its own benchmark {own!r} only (its family builds no zero-shot "
                          f"head from another benchmark's classes), not on {config.benchmark!r}; drop --benchmark, "
                          f"or gate an openclip or transformers model there")
    return config.benchmark


def model_prompts(text: str, config: SuiteConfig) -> Prompts:
    """The prompts of model `text`'s zero-shot head: its benchmark's, under `[tool.robustness.prompts]`."""
    try:
        return configured_prompts(get_benchmark(model_benchmark(text, config)).prompts(), config.templates,
                                  config.classnames, Path("/"))
    except PromptsError as error:
        raise ConfigError(str(error)) from None


def expand_cases(config: SuiteConfig) -> list[Case]:
    """Every case of the run: each configured model crossed with its benchmark's settings, in a stable order."""
    cases = []
    for text in config.models:
        model_id, family = resolve(text)
        benchmark = model_benchmark(text, config)
        if is_zero_shot(family):
            model_prompts(text, config)  # a bad prompts file fails the run at start, not at its first case
        cases += [Case(text, model_id.line, benchmark, setting)
                  for setting in settings_for(benchmark, config, text)]
    ids = [case.id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"two models share a model line, so their case ids collide: {', '.join(duplicates[:5])}")
    return cases


def unmatched_smoke(config: SuiteConfig, cases: list[Case]) -> list[str]:
    """The names of `config.smoke` that no case of the run has (a misspelt name, or a setting another benchmark
    or protocol has): the smoke slice is smaller than listed by these."""
    return sorted(set(config.smoke) - {case.setting.name for case in cases})
