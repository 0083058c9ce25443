"""Adversarial attacks: specs in pixel units, built with torchattacks, checked for validity on every batch.

A spec reads `<attack>-<norm>-<eps>`, eps in [0, 1] pixel units written as a fraction (`4/255`) or a decimal
(`0.5`), e.g. `pgd-linf-1/255`, `apgd-ce-l2-0.5`, `square-linf-2/255`. Add an attack with
`@register_attack("name", norms=(...), ...)`.

Two kinds of attack:
- bounded: the attack keeps the perturbation inside the eps-ball; a sample is robust when the model still
  classifies the adversarial image correctly;
- minimum-norm (CW, DeepFool, FAB): the attack looks for the smallest perturbation that flips the label; a sample
  is robust at eps when the attack failed or needed a perturbation larger than eps (as RobustBench scores them).
Either way a sample counts as robust only if it was also classified correctly clean.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator

import torch
import torchattacks
from torch import nn

from .registry import Registry
from .settings import Setting, SettingScope, config_error, register_shift_kind
from .shifts.base import Inputs, Perturbation, Scored, Scorer


class AttackValidityError(AssertionError):
    """An attack broke its contract (budget, pixel range, eval mode, gradients): its accuracy would mean nothing."""


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """`eps` in pixel units ([0, 1] images); `steps` iterations of size `alpha` (pixel units) for iterative
    attacks, `queries` model queries per image for score-based black-box attacks."""

    attack: str
    norm: str
    eps_text: str
    eps: float
    steps: int
    alpha: float
    restarts: int
    queries: int
    minimum_norm: bool
    white_box: bool

    @property
    def name(self) -> str:
        return f"{self.attack}-{self.norm}-{self.eps_text}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


Builder = Callable[[nn.Module, AttackSpec, int, int], torchattacks.attack.Attack]  # (model, spec, n_classes, seed)


@dataclasses.dataclass(frozen=True)
class AttackEntry:
    build: Builder
    norms: tuple[str, ...]
    steps: int = 1
    alpha_fraction: float = 1.0  # step size as a fraction of eps
    restarts: int = 1
    queries: int = 0
    minimum_norm: bool = False
    white_box: bool = True


ATTACKS: Registry[AttackEntry] = Registry("attack")


def register_attack(name: str, norms: tuple[str, ...], **options) -> Callable[[Builder], Builder]:
    """Decorator: register the builder as attack `name` for `norms`, with the AttackEntry `options` (steps,
    alpha_fraction, restarts, queries, minimum_norm, white_box), and return it unchanged; a name already registered
    is refused (DuplicateNameError)."""
    def decorate(build: Builder) -> Builder:
        ATTACKS.add(name, AttackEntry(build, norms, **options))
        return build
    return decorate


def _torch_norm(norm: str) -> str:
    return {"linf": "Linf", "l2": "L2"}[norm]


@register_attack("fgsm", norms=("linf",))
def _fgsm(model, spec, n_classes, seed):
    return torchattacks.FGSM(model, eps=spec.eps)


@register_attack("bim", norms=("linf",), steps=10, alpha_fraction=0.25)
def _bim(model, spec, n_classes, seed):
    return torchattacks.BIM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps)


@register_attack("pgd", norms=("linf", "l2"), steps=10, alpha_fraction=0.25)
def _pgd(model, spec, n_classes, seed):
    if spec.norm == "l2":
        return torchattacks.PGDL2(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)
    return torchattacks.PGD(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)


@register_attack("mim", norms=("linf",), steps=10, alpha_fraction=0.1)
def _mim(model, spec, n_classes, seed):
    return torchattacks.MIFGSM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, decay=1.0)


@register_attack("dim", norms=("linf",), steps=10, alpha_fraction=0.1)
def _dim(model, spec, n_classes, seed):
    return torchattacks.DIFGSM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, decay=1.0,
                               resize_rate=0.9, diversity_prob=0.5)


@register_attack("cw", norms=("l2",), steps=50, minimum_norm=True)
def _cw(model, spec, n_classes, seed):
    return torchattacks.CW(model, c=1.0, kappa=0.0, steps=spec.steps, lr=0.01)


@register_attack("deepfool", norms=("l2",), steps=50, minimum_norm=True)
def _deepfool(model, spec, n_classes, seed):
    return torchattacks.DeepFool(model, steps=spec.steps, overshoot=0.02)


@register_attack("apgd-ce", norms=("linf", "l2"), steps=10)
def _apgd_ce(model, spec, n_classes, seed):
    return torchattacks.APGD(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                             n_restarts=spec.restarts, seed=seed, loss="ce")


@register_attack("apgd-dlr", norms=("linf", "l2"), steps=10)
def _apgd_dlr(model, spec, n_classes, seed):
    return torchattacks.APGD(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                             n_restarts=spec.restarts, seed=seed, loss="dlr")


@register_attack("fab", norms=("linf", "l2"), steps=20, minimum_norm=True)
def _fab(model, spec, n_classes, seed):
    return torchattacks.FAB(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                            n_restarts=spec.restarts, seed=seed, n_classes=n_classes)


@register_attack("square", norms=("linf", "l2"), queries=200, white_box=False)
def _square(model, spec, n_classes, seed):
    return torchattacks.Square(model, norm=_torch_norm(spec.norm), eps=spec.eps, n_queries=spec.queries,
                               n_restarts=spec.restarts, seed=seed, loss="margin")


@register_attack("spsa", norms=("linf",), steps=10, queries=32, white_box=False)
def _spsa(model, spec, n_classes, seed):
    return torchattacks.SPSA(model, eps=spec.eps, delta=0.01, lr=0.01, nb_iter=spec.steps, nb_sample=spec.queries,
                             max_batch_size=spec.queries)


def known_attacks() -> list[str]:
    return [f"{name}-{norm}" for name, entry in ATTACKS.items() for norm in entry.norms]


# The largest eps parse_attack accepts per norm, in pixel units: an linf budget beyond 1 changes nothing on [0, 1]
# images; the l2 limit is a sanity cap against a typo (a 3x224x224 image's whole range has l2 norm about 388).
EPS_LIMITS = {"linf": 1.0, "l2": 100.0}


def parse_attack(text: str) -> AttackSpec:
    """`pgd-linf-1/255` -> AttackSpec; ValueError naming the known attacks when it cannot be parsed."""
    parts = text.rsplit("-", 2)
    if len(parts) != 3:
        raise ValueError(f"attack {text!r} is not of the form <attack>-<norm>-<eps>; known: {', '.join(known_attacks())}")
    attack, norm, eps_text = parts
    if attack not in ATTACKS or norm not in ATTACKS[attack].norms:
        raise ValueError(f"unknown attack {attack}-{norm} in {text!r}; known: {', '.join(known_attacks())}")
    entry = ATTACKS[attack]
    try:
        numerator, _, denominator = eps_text.partition("/")
        eps = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"attack {text!r}: eps {eps_text!r} is not a number such as 4/255 or 0.5") from None
    limit = EPS_LIMITS[norm]
    if not 0 < eps <= limit:
        raise ValueError(f"attack {text!r}: eps must be in (0, {limit:g}] pixel units for {norm}, got {eps}")
    return AttackSpec(attack, norm, eps_text, eps, entry.steps, eps * entry.alpha_fraction, entry.restarts,
                      entry.queries, entry.minimum_norm, entry.white_box)


def perturbation_norms(clean: torch.Tensor, adversarial: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (adversarial - clean).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


def check_adversarial(clean: torch.Tensor, adversarial: torch.Tensor, spec: AttackSpec, tol: float = 1e-6) -> None:
    """Raise AttackValidityError unless `adversarial` is in [0, 1] and, for a bounded attack, within `spec.eps`
    of `clean` in its norm."""
    if adversarial.shape != clean.shape:
        raise AttackValidityError(f"{spec.name}: adversarial shape {tuple(adversarial.shape)} != {tuple(clean.shape)}")
    low, high = adversarial.min().item(), adversarial.max().item()
    if low < -tol or high > 1 + tol:
        raise AttackValidityError(f"{spec.name}: adversarial pixels leave [0, 1] (min {low:.6f}, max {high:.6f})")
    if not spec.minimum_norm:
        worst = perturbation_norms(clean, adversarial, spec.norm).max().item()
        if worst > spec.eps + tol:
            raise AttackValidityError(
                f"{spec.name}: perturbation {spec.norm} norm {worst:.6g} exceeds eps {spec.eps:.6g}")


GRADIENT_CHECK_SAMPLES = 8


def check_attackable(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec) -> None:
    """Preconditions: pixels in [0, 1] (normalization belongs inside the model), model in eval mode, and, for a
    white-box attack, a non-zero input gradient of the loss on the first GRADIENT_CHECK_SAMPLES images (a
    detached or non-differentiable model has none on any image; checking a few keeps the check's cost small
    against the attack's)."""
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise AttackValidityError(
            f"{spec.name}: attack inputs must be pixels in [0, 1], got [{low:.3f}, {high:.3f}]; was normalization "
            f"applied before the attack? Models normalize inside (PixelClassifier).")
    training = [name or "model" for name, module in model.named_modules() if module.training]
    if training:
        raise AttackValidityError(f"{spec.name}: the model is in train mode ({', '.join(training[:3])}); "
                                  f"call .eval() so dropout and batch-norm do not mask the gradient")
    if spec.white_box:
        pixels = images[:GRADIENT_CHECK_SAMPLES].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(pixels), labels[:GRADIENT_CHECK_SAMPLES])
            (gradient,) = torch.autograd.grad(loss, pixels, allow_unused=True)
        if gradient is None or not torch.any(gradient != 0):
            raise AttackValidityError(f"{spec.name}: the input gradient of the loss is zero; a white-box attack "
                                      f"cannot move (is the model detached or non-differentiable?)")


@dataclasses.dataclass(frozen=True)
class AttackOutcome:
    """Per sample (N,): `clean_correct`, `robust` (correct clean and not broken within eps), and the `norms` of
    the perturbations the attack returned (pixel units, in the spec's norm)."""

    adversarial: torch.Tensor
    clean_correct: torch.Tensor
    robust: torch.Tensor
    norms: torch.Tensor


@contextlib.contextmanager
def _global_rng_restored() -> Iterator[None]:
    """On exit torch's global generators are back where the caller left them, whatever the block seeded or drew:
    the CPU generator, and every CUDA device's once CUDA is initialized (it is whenever the inputs are on CUDA).
    torchattacks draws from the global generators, and some of its attacks re-seed them themselves."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield


def run_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec, seed: int,
               attack_model: nn.Module | None = None) -> AttackOutcome:
    """Attack `images` (N, 3, H, W) in [0, 1] and score `model` on the result; random draws come from `seed`, and
    the caller's global torch RNG state is left as it was.

    `attack_model` crafts the perturbation when it is not `model` (a transfer attack from a surrogate). Only the
    images `model` classifies correctly are attacked, as AutoAttack does: a misclassified image counts as not
    robust whatever the attack does, so attacking it would cost compute and could not change its score; it is returned
    unchanged (norm 0).
    """
    source = attack_model if attack_model is not None else model
    check_attackable(source, images, labels, spec)
    with torch.no_grad():
        logits = model(images)
    clean_correct, n_classes = logits.argmax(dim=1) == labels, logits.shape[1]
    adversarial, adversarial_correct = images.clone(), torch.zeros_like(clean_correct)
    attacked = clean_correct.nonzero().squeeze(1)
    if attacked.numel():
        with _global_rng_restored():
            attack = ATTACKS[spec.attack].build(source, spec, n_classes, seed)
            torch.manual_seed(seed)
            adversarial[attacked] = attack(images[attacked], labels[attacked]).detach()
        check_adversarial(images, adversarial, spec)
        with torch.no_grad():
            adversarial_correct[attacked] = model(adversarial[attacked]).argmax(dim=1) == labels[attacked]
    norms = perturbation_norms(images, adversarial, spec.norm)
    moved = norms[clean_correct] > 0
    if attack_model is None and spec.white_box and moved.numel() and not moved.any():
        raise AttackValidityError(f"{spec.name}: the attack returned every correctly classified input unchanged")
    survived = adversarial_correct | (norms > spec.eps + 1e-6) if spec.minimum_norm else adversarial_correct
    return AttackOutcome(adversarial, clean_correct, clean_correct & survived, norms)


@dataclasses.dataclass(frozen=True)
class Attack(Perturbation):
    """An adversarial attack `spec` on the model under test, or, with `surrogate` (a model id), crafted on that
    model and transferred. Always scored in float32, never under autocast, so budgets and gradients mean what
    they say."""

    spec: AttackSpec
    surrogate: str | None = None

    def record(self) -> dict[str, Any]:
        return {"attack": self.spec.as_dict()} | ({} if self.surrogate is None else {"surrogate": self.surrogate})

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        return scorer.attack(inputs, self.spec, self.surrogate)

    @property
    def autocast(self) -> bool:
        return False


@register_shift_kind("attack")
def attack_settings(scope: SettingScope) -> list[Setting]:
    """One white-box or black-box setting per configured attack (`adversarial.attacks`), on the clean split."""
    settings = []
    for text in scope.config.attacks:
        try:
            spec = parse_attack(text)
        except ValueError as error:
            raise config_error("adversarial", error) from None
        settings.append(Setting("adversarial", spec.name, scope.clean_split,
                                scope.config.samples_for("adversarial", spec.attack), perturbation=Attack(spec)))
    return settings


def surrogate_for(scope: SettingScope) -> str | None:
    """The first configured surrogate that is not the target itself and classifies the same benchmark."""
    from .models import resolve  # the model families import the data layer, which does not need them here

    for surrogate in scope.config.surrogates:
        surrogate_id, family = resolve(surrogate)
        if surrogate != scope.model and family.benchmark(surrogate_id) == scope.benchmark:
            return surrogate
    return None


@register_shift_kind("transfer")
def transfer_settings(scope: SettingScope) -> list[Setting]:
    """`transfer-<attack>-from-<surrogate line>` per configured transfer attack, when a surrogate applies."""
    from .models import ModelId

    surrogate = surrogate_for(scope)
    settings = []
    for text in scope.config.transfer_attacks if surrogate else ():
        try:
            spec = parse_attack(text)
        except ValueError as error:
            raise config_error("adversarial.transfer", error) from None
        name = f"transfer-{spec.name}-from-{ModelId.parse(surrogate).line}"
        settings.append(Setting("adversarial", name, scope.clean_split,
                                scope.config.samples_for("adversarial", spec.attack),
                                perturbation=Attack(spec, surrogate)))
    return settings
