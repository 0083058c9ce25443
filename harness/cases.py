"""The unit of the suite: a case is one frozen (model, evaluation setting) value.

An evaluation setting follows the ImageNet testbed's EvalSetting: a dataset split, an optional perturbation
(a corruption at a severity, an attack), a metric (top-1 or pm-k) and a sample cap. Its name is what a person
types after `-k`: `sketch`, `gaussian_noise-3`, `pgd-linf-1/255`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .attacks import Attack, parse_attack
from .config import ConfigError, SuiteConfig
from .data import get_benchmark
from .models import ModelId, resolve
from .records import CATEGORIES
from .shifts.base import Perturbation
from .shifts.corruptions import Corruption
from .shifts.perturbations import SEQUENCES, TRANSFORMS, FrameSequence, Transform
from .shifts.typographic import Typographic, TypographicSpec

__all__ = ["CATEGORIES", "Case", "Setting", "expand_cases", "settings_for"]


@dataclasses.dataclass(frozen=True)
class Setting:
    category: str
    name: str
    split: str
    samples: int
    k: int | None = None
    perturbation: Perturbation | None = None

    @property
    def key(self) -> str:
        """Unique within a model line; the key of this setting's entry in a baseline file."""
        return f"{self.category}/{self.name}"

    @property
    def metric(self) -> str:
        if isinstance(self.perturbation, FrameSequence):
            return "stability"
        return "top1" if self.k is None else f"pm-{self.k}"

    def as_dict(self) -> dict[str, Any]:
        """Everything that defines the measurement protocol (compared against a baseline's)."""
        out: dict[str, Any] = {"category": self.category, "name": self.name, "split": self.split,
                               "metric": self.metric, "samples": self.samples}
        return out | ({} if self.perturbation is None else self.perturbation.record())


@dataclasses.dataclass(frozen=True)
class Case:
    model: str
    line: str
    benchmark: str
    setting: Setting

    @property
    def id(self) -> str:
        return f"{self.line}-{self.setting.name}"


def _config_error(section: str, error: ValueError) -> ConfigError:
    return ConfigError(f"[tool.robustness.{section}]: {error}")


def _surrogate(model: str, benchmark: str, config: SuiteConfig) -> str | None:
    """The first configured surrogate that is not the target itself and classifies the same benchmark."""
    for surrogate in config.surrogates:
        surrogate_id, family = resolve(surrogate)
        if surrogate != model and family.benchmark(surrogate_id) == benchmark:
            return surrogate
    return None


def settings_for(benchmark_name: str, config: SuiteConfig, model: str) -> list[Setting]:
    benchmark = get_benchmark(benchmark_name)
    clean = benchmark.clean_split
    settings = [Setting("clean", clean, clean, config.samples_for("clean"))]
    settings += [Setting("natural", shift.name, shift.split, config.samples_for("natural"), k=shift.k)
                 for shift in benchmark.natural_shifts]
    for corruption in config.corruptions:
        for severity in config.severities:
            try:
                perturbation = Corruption(corruption, severity)
            except ValueError as error:
                raise _config_error("synthetic", error) from None
            settings.append(Setting("synthetic", f"{corruption}-{severity}", clean,
                                    config.samples_for("synthetic"), perturbation=perturbation))
    for name in config.transforms:
        if name not in TRANSFORMS:
            raise ConfigError(f"[tool.robustness.synthetic]: unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        settings.append(Setting("synthetic", name, clean, config.samples_for("synthetic"),
                                perturbation=Transform(name)))
    for kind in config.sequences:
        if kind not in SEQUENCES:
            raise ConfigError(f"[tool.robustness.synthetic]: unknown perturbation sequence {kind!r}; known: "
                              f"{', '.join(SEQUENCES)}")
        settings.append(Setting("synthetic", f"p-{kind}", clean, config.samples_for("synthetic"),
                                perturbation=FrameSequence(kind)))
    for text in config.attacks:
        try:
            spec = parse_attack(text)
        except ValueError as error:
            raise _config_error("adversarial", error) from None
        settings.append(Setting("adversarial", spec.name, clean, config.samples_for("adversarial", spec.attack),
                                perturbation=Attack(spec)))
    surrogate = _surrogate(model, benchmark_name, config)
    for text in config.transfer_attacks if surrogate else ():
        try:
            spec = parse_attack(text)
        except ValueError as error:
            raise _config_error("adversarial.transfer", error) from None
        name = f"transfer-{spec.name}-from-{ModelId.parse(surrogate).line}"
        settings.append(Setting("adversarial", name, clean, config.samples_for("adversarial", spec.attack),
                                perturbation=Attack(spec, surrogate)))
    for text in config.typographic:
        try:
            spec = TypographicSpec.parse(text)
        except ValueError as error:
            raise _config_error("adversarial.typographic", error) from None
        settings.append(Setting("adversarial", spec.name, clean, config.samples_for("adversarial", "typographic"),
                                perturbation=Typographic(spec)))
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
