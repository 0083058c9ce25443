"""An evaluation setting, and the registry of the shift kinds that make them.

A setting follows the ImageNet testbed's EvalSetting: a dataset split, a metric (top-1, pm-k or stability), a
sample cap and at most one perturbation (harness.shifts.base): a corruption at a severity, a whole-image
transform, a perturbation sequence, a typographic overlay or an attack. Its name is what a person types after
`-k`: `sketch`, `gaussian_noise-3`, `pgd-linf-1/255`.

Each kind of shift registers, in its own module, the function that makes its settings from the run's
configuration (`@register_shift_kind`); `harness.cases` crosses every model with its benchmark's clean split,
natural shifts and the settings of every registered kind.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .config import ConfigError, SuiteConfig
from .registry import Registry
from .shifts.base import Perturbation


@dataclasses.dataclass(frozen=True)
class Setting:
    category: str
    name: str
    split: str
    samples: int
    k: int | None = None
    perturbation: Perturbation | None = None
    id_split: str | None = None  # a natural shift over a class subset: the ID split measured beside it

    @property
    def key(self) -> str:
        """Unique within a model line; the key of this setting's entry in a baseline file."""
        return f"{self.category}/{self.name}"

    @property
    def metric(self) -> str:
        if self.perturbation is not None and self.perturbation.metric is not None:
            return self.perturbation.metric
        return "top1" if self.k is None else f"pm-{self.k}"

    def as_dict(self) -> dict[str, Any]:
        """Everything that defines the measurement protocol (compared against a baseline's)."""
        out: dict[str, Any] = {"category": self.category, "name": self.name, "split": self.split,
                               "metric": self.metric, "samples": self.samples}
        if self.id_split is not None:
            out["id_split"] = self.id_split
        return out | ({} if self.perturbation is None else self.perturbation.record())


@dataclasses.dataclass(frozen=True)
class SettingScope:
    """What a shift kind makes settings for: the run's configuration, one model (its id as configured) and that
    model's benchmark (its name and clean split, the split perturbations apply to)."""

    config: SuiteConfig
    model: str
    benchmark: str
    clean_split: str


SettingsOf = Callable[[SettingScope], list[Setting]]
SHIFT_KINDS: Registry[SettingsOf] = Registry("shift kind")


def register_shift_kind(name: str) -> Callable[[SettingsOf], SettingsOf]:
    """Decorator: register `settings(scope) -> list[Setting]` as shift kind `name` and return it unchanged; every
    model of a run gets the settings of every kind. A configuration error raises ConfigError naming its table."""
    return SHIFT_KINDS.register(name)


def config_error(section: str, error: ValueError) -> ConfigError:
    return ConfigError(f"[tool.robustness.{section}]: {error}")
