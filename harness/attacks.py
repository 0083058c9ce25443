"""Adversarial attacks: specs in pixel units, built with torchattacks, checked for validity after every batch.

A spec reads `<attack>-<norm>-<eps>`, eps in [0, 1] pixel units written as a fraction (`4/255`) or a decimal
(`0.5`), e.g. `pgd-linf-1/255`. Add an attack with `@register_attack("name", norms=(...))`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torchattacks
from torch import nn


class AttackValidityError(AssertionError):
    """An attack broke its contract (budget, pixel range): its accuracy would mean nothing."""


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """`eps` in pixel units ([0, 1] images); `steps` iterations of size `alpha` (pixel units)."""

    attack: str
    norm: str
    eps_text: str
    eps: float
    steps: int
    alpha: float

    @property
    def name(self) -> str:
        return f"{self.attack}-{self.norm}-{self.eps_text}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


Builder = Callable[[nn.Module, AttackSpec], torchattacks.attack.Attack]


@dataclasses.dataclass(frozen=True)
class _Entry:
    build: Builder
    norms: tuple[str, ...]
    steps: int
    alpha_fraction: float  # step size as a fraction of eps


_ATTACKS: dict[str, _Entry] = {}


def register_attack(name: str, norms: tuple[str, ...], steps: int = 1,
                    alpha_fraction: float = 1.0) -> Callable[[Builder], Builder]:
    def decorate(build: Builder) -> Builder:
        _ATTACKS[name] = _Entry(build, norms, steps, alpha_fraction)
        return build
    return decorate


@register_attack("fgsm", norms=("linf",))
def _fgsm(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.FGSM(model, eps=spec.eps)


@register_attack("pgd", norms=("linf",), steps=10, alpha_fraction=0.25)
def _pgd_linf(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.PGD(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)


def known_attacks() -> list[str]:
    return [f"{name}-{norm}" for name, entry in sorted(_ATTACKS.items()) for norm in entry.norms]


def parse_attack(text: str) -> AttackSpec:
    """`pgd-linf-1/255` -> AttackSpec; ValueError naming the known attacks when it cannot be parsed."""
    parts = text.split("-")
    if len(parts) != 3:
        raise ValueError(f"attack {text!r} is not of the form <attack>-<norm>-<eps>; known: {', '.join(known_attacks())}")
    attack, norm, eps_text = parts
    entry = _ATTACKS.get(attack)
    if entry is None or norm not in entry.norms:
        raise ValueError(f"unknown attack {attack}-{norm} in {text!r}; known: {', '.join(known_attacks())}")
    try:
        numerator, _, denominator = eps_text.partition("/")
        eps = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"attack {text!r}: eps {eps_text!r} is not a number such as 4/255 or 0.5") from None
    if not 0 < eps <= 1:
        raise ValueError(f"attack {text!r}: eps must be in (0, 1] pixel units, got {eps}")
    return AttackSpec(attack, norm, eps_text, eps, entry.steps, eps * entry.alpha_fraction)


def check_adversarial(clean: torch.Tensor, adversarial: torch.Tensor, spec: AttackSpec, tol: float = 1e-6) -> None:
    """Raise AttackValidityError unless `adversarial` is in [0, 1] and within `spec.eps` of `clean` in its norm."""
    if adversarial.shape != clean.shape:
        raise AttackValidityError(f"{spec.name}: adversarial shape {tuple(adversarial.shape)} != {tuple(clean.shape)}")
    low, high = adversarial.min().item(), adversarial.max().item()
    if low < -tol or high > 1 + tol:
        raise AttackValidityError(f"{spec.name}: adversarial pixels leave [0, 1] (min {low:.6f}, max {high:.6f})")
    delta = (adversarial - clean).flatten(1)
    size = delta.abs().amax(dim=1) if spec.norm == "linf" else delta.norm(dim=1)
    worst = size.max().item()
    if worst > spec.eps + tol:
        raise AttackValidityError(f"{spec.name}: perturbation {spec.norm} norm {worst:.6g} exceeds eps {spec.eps:.6g}")


def attack_batch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec,
                 seed: int) -> torch.Tensor:
    """Adversarial versions of `images` (N, 3, H, W) in [0, 1]; random starts drawn from `seed` alone."""
    attack = _ATTACKS[spec.attack].build(model, spec)
    torch.manual_seed(seed)
    adversarial = attack(images, labels).detach()
    check_adversarial(images, adversarial, spec)
    return adversarial
