"""Model families: each turns a ModelId into a LoadedModel. Add a family with `@register_family("prefix")`."""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from ..cache import ArrayCache
from ..prompts import Prompts
from ..registry import Registry
from .base import LoadedModel, ModelId


class UnknownModelError(LookupError):
    """The model id names no registered family or model; the message lists the known ids."""


class ModelFamily(Protocol):
    def names(self) -> list[str]:
        """Model names this family knows without network access (used in error messages)."""

    def validate(self, model_id: ModelId) -> None:
        """Raise UnknownModelError when `model_id` cannot name a model of this family."""

    def benchmark(self, model_id: ModelId) -> str:
        """The benchmark (dataset family and class list) this model is evaluated on."""

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None) -> LoadedModel:
        """Load weights and build the classifier, in eval mode, on `device`. `cache` is the run's content-addressed
        cache, where a family may keep what it derives from the weights (zero-shot heads); None derives afresh.

        A zero-shot family sets the class attribute `zero_shot = True` and takes a fourth argument, `prompts`
        (harness.prompts.Prompts, or None for those of its own benchmark): the class names and templates its
        head is built from. It may then be evaluated on any benchmark (`--benchmark`)."""


FAMILIES: Registry[ModelFamily] = Registry("model family")  # prefix -> an instance of the decorated class


def register_family(prefix: str) -> Callable[[type], type]:
    """Class decorator: register an instance of the class as the family of `prefix` (the part of a model id before
    the colon) and return the class unchanged; a prefix already registered is refused (DuplicateNameError)."""
    def decorate(cls: type) -> type:
        FAMILIES.add(prefix, cls())
        return cls
    return decorate


def is_zero_shot(family: ModelFamily) -> bool:
    """Whether `family` builds a zero-shot head from the prompts it is given (class attribute `zero_shot`)."""
    return bool(getattr(family, "zero_shot", False))


def known_model_ids() -> list[str]:
    return [f"{prefix}:{name}" for prefix, family in FAMILIES.items() for name in family.names()]


def resolve(text: str) -> tuple[ModelId, ModelFamily]:
    """Parse and validate a model id; raises UnknownModelError naming the known ids. Listing them asks every family
    for its cached models (open_clip's import and a walk of the weight caches: seconds), so only an error does."""
    try:
        model_id = ModelId.parse(text)
    except ValueError as error:
        raise UnknownModelError(f"{error}; known model ids: {', '.join(known_model_ids())}") from None
    if model_id.family not in FAMILIES:
        raise UnknownModelError(f"unknown model family {model_id.family!r} in {text!r}; known model ids: "
                                f"{', '.join(known_model_ids())}")
    family = FAMILIES[model_id.family]
    family.validate(model_id)
    return model_id, family


def load_model(text: str, device: torch.device, cache: ArrayCache | None = None,
               prompts: Prompts | None = None) -> LoadedModel:
    """The model of `text` on `device`; see ModelFamily.load (`prompts` reach zero-shot families only). Its
    `classifier` is in eval mode with gradients off for its parameters (LoadedModel)."""
    model_id, family = resolve(text)
    if is_zero_shot(family):
        return family.load(model_id, device, cache, prompts)
    return family.load(model_id, device, cache)
