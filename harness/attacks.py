"""Adversarial attacks: specs in pixel units, built with torchattacks, checked for validity on every batch.

A spec reads `<attack>-<norm>-<eps>`, eps in [0, 1] pixel units written as a fraction (`4/255`) or a decimal
(`0.5`), e.g. `pgd-linf-1/255`, `apgd-ce-l2-0.5`, `square-linf-2/255`. Add an attack with
`@register_attack("name", norms=(...), ...)`.

`-roz` after a spec (`pgd-linf-8/255-roz`) states its budget as RoZ's code does (wang-research-lab/roz): in CLIP's
normalized space, clipped to RoZ's box [-1.8, 2.15] rather than to the image range (see `RozSpace`). It is a
comparison mode for setting RoZ's figures beside the project's, never the default: a normalized eps is about 0.27x
in pixels (CLIP's channel std is 0.261 to 0.276), so `8/255-roz` is about 2.1/255 in pixel units.

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
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .config import SuiteConfig
from .registry import Registry
from .settings import Setting, SettingScope, config_error, register_shift_kind
from .records import encode_bits
from .shifts.base import Inputs, Perturbation, Scored, Scorer


class AttackValidityError(AssertionError):
    """An attack broke its contract (budget, pixel range, eval mode, gradients): its accuracy would mean nothing."""


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """`eps` in pixel units ([0, 1] images), or on CLIP-normalized images for `space` "roz"; `steps` iterations
    of size `alpha` (same units) for iterative attacks, `queries` model queries per image (per step) for
    score-based and decision-based attacks; `components`, the attacks of a per-sample worst case."""

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
    space: str = "pixel"
    components: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.attack}-{self.norm}-{self.eps_text}" + ("" if self.space == "pixel" else f"-{self.space}")

    @property
    def bounded(self) -> bool:
        """Keeps its perturbation inside the eps-ball (not a minimum-norm attack)."""
        return not self.minimum_norm

    def at(self, eps: float) -> "AttackSpec":
        """This attack at budget `eps` (same units), its step size scaled with it."""
        text = f"{eps:.9g}"
        return dataclasses.replace(self, eps_text=text, eps=eps, alpha=eps * ATTACKS[self.attack].alpha_fraction)

    def as_dict(self) -> dict:
        """The spec's protocol record; the fields of the pixel-space default are left out, so a record made before
        they existed still matches."""
        out = dataclasses.asdict(self) | {"name": self.name}
        if self.space == "pixel":
            del out["space"]
        if not self.components:
            del out["components"]
        else:
            out["components"] = [component.as_dict() for component in component_specs(self)]
        return out


AttackFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, labels) -> adversarial images
Builder = Callable[[nn.Module, AttackSpec, int, int], AttackFn]  # (model, spec, n_classes, seed)


@dataclasses.dataclass(frozen=True)
class AttackEntry:
    build: Builder | None  # None for a worst case over `components`
    norms: tuple[str, ...]
    steps: int = 1
    alpha_fraction: float = 1.0  # step size as a fraction of eps
    restarts: int = 1
    queries: int = 0
    minimum_norm: bool = False
    white_box: bool = True
    components: tuple[str, ...] = ()  # a worst case over these attacks (run_attack), when not empty


ATTACKS: Registry[AttackEntry] = Registry("attack")


def register_attack(name: str, norms: tuple[str, ...], **options) -> Callable[[Builder], Builder]:
    """Decorator: register the builder as attack `name` for `norms`, with the AttackEntry `options` (steps,
    alpha_fraction, restarts, queries, minimum_norm, white_box), and return it unchanged; a name already
    registered is refused (DuplicateNameError)."""
    def decorate(build: Builder) -> Builder:
        ATTACKS.add(name, AttackEntry(build, norms, **options))
        return build
    return decorate


def _torchattacks() -> Any:
    """The torchattacks module, imported on first use: it costs about a second (scipy.stats among its imports),
    which a run without attacks, or the start of one, need not pay."""
    import torchattacks

    return torchattacks


def _torch_norm(norm: str) -> str:
    return {"linf": "Linf", "l2": "L2"}[norm]


@register_attack("fgsm", norms=("linf",))
def _fgsm(model, spec, n_classes, seed):
    return _torchattacks().FGSM(model, eps=spec.eps)


@register_attack("bim", norms=("linf",), steps=10, alpha_fraction=0.25)
def _bim(model, spec, n_classes, seed):
    return _torchattacks().BIM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps)


@register_attack("pgd", norms=("linf", "l2"), steps=10, alpha_fraction=0.25)
def _pgd(model, spec, n_classes, seed):
    if spec.norm == "l2":
        return _torchattacks().PGDL2(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)
    return _torchattacks().PGD(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=True)


@register_attack("mim", norms=("linf",), steps=10, alpha_fraction=0.1)
def _mim(model, spec, n_classes, seed):
    return _torchattacks().MIFGSM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, decay=1.0)


@register_attack("dim", norms=("linf",), steps=10, alpha_fraction=0.1)
def _dim(model, spec, n_classes, seed):
    return _torchattacks().DIFGSM(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, decay=1.0,
                               resize_rate=0.9, diversity_prob=0.5)


@register_attack("cw", norms=("l2",), steps=50, minimum_norm=True)
def _cw(model, spec, n_classes, seed):
    return _torchattacks().CW(model, c=1.0, kappa=0.0, steps=spec.steps, lr=0.01)


@register_attack("deepfool", norms=("l2",), steps=50, minimum_norm=True)
def _deepfool(model, spec, n_classes, seed):
    return _torchattacks().DeepFool(model, steps=spec.steps, overshoot=0.02)


@register_attack("apgd-ce", norms=("linf", "l2"), steps=10)
def _apgd_ce(model, spec, n_classes, seed):
    return _torchattacks().APGD(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                             n_restarts=spec.restarts, seed=seed, loss="ce")


@register_attack("apgd-dlr", norms=("linf", "l2"), steps=10)
def _apgd_dlr(model, spec, n_classes, seed):
    return _torchattacks().APGD(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                             n_restarts=spec.restarts, seed=seed, loss="dlr")


# The targeted attacks aim at the 9 classes the model scores highest after the true one, as AutoAttack's standard
# version does (torchattacks runs n_classes - 1 targets, so it is given at most 10 classes).
TARGET_CLASSES = 9


@register_attack("apgd-t", norms=("linf", "l2"), steps=10)
def _apgd_t(model, spec, n_classes, seed):
    return _torchattacks().APGDT(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                              n_restarts=spec.restarts, seed=seed, n_classes=min(n_classes, TARGET_CLASSES + 1))


@register_attack("fab-t", norms=("linf", "l2"), steps=10, minimum_norm=True)
def _fab_t(model, spec, n_classes, seed):
    return _torchattacks().FAB(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                            n_restarts=spec.restarts, seed=seed, multi_targeted=True,
                            n_classes=min(n_classes, TARGET_CLASSES + 1))


@register_attack("fab", norms=("linf", "l2"), steps=20, minimum_norm=True)
def _fab(model, spec, n_classes, seed):
    return _torchattacks().FAB(model, norm=_torch_norm(spec.norm), eps=spec.eps, steps=spec.steps,
                            n_restarts=spec.restarts, seed=seed, n_classes=n_classes)


@register_attack("square", norms=("linf", "l2"), queries=200, white_box=False)
def _square(model, spec, n_classes, seed):
    return _torchattacks().Square(model, norm=_torch_norm(spec.norm), eps=spec.eps, n_queries=spec.queries,
                               n_restarts=spec.restarts, seed=seed, loss="margin")


@register_attack("spsa", norms=("linf",), steps=10, queries=32, white_box=False)
def _spsa(model, spec, n_classes, seed):
    return _torchattacks().SPSA(model, eps=spec.eps, delta=0.01, lr=0.01, nb_iter=spec.steps, nb_sample=spec.queries,
                             max_batch_size=spec.queries)


# RoZ's NES: 20 signed steps of 0.15 eps, each from 100 antithetic Gaussian pairs (sigma 0.001).
@register_attack("nes", norms=("linf",), steps=20, alpha_fraction=0.15, queries=100, white_box=False)
def _nes(model, spec, n_classes, seed):
    from .nes import NES

    return NES(model, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, queries=spec.queries, seed=seed)


@register_attack("hsj", norms=("l2", "linf"), steps=10, queries=1000, minimum_norm=True, white_box=False)
def _hsj(model, spec, n_classes, seed):
    from .hopskipjump import HopSkipJump

    return HopSkipJump(model, norm=spec.norm, max_iter=spec.steps, max_eval=spec.queries,
                       init_eval=max(1, spec.queries // 10), seed=seed)


def register_worst_case(name: str, norms: tuple[str, ...], components: tuple[str, ...], queries: int = 0) -> None:
    """Register attack `name`: per sample, the worst case over the registered attacks `components` at the same
    budget (robust only if robust under each); `queries` go to its score-based components."""
    ATTACKS.add(name, AttackEntry(None, norms, queries=queries, components=components))


# AutoAttack's standard version (Croce & Hein 2020; RobustBench's protocol), as torchattacks' AutoAttack builds
# it: APGD-CE, APGD-T and FAB-T at 10 steps each, then Square at 5,000 queries. Here each component runs on every
# clean-correct sample and a sample is robust only if it survives all of them (the per-sample worst case), so the
# worst case is never above any component on any sample.
register_worst_case("autoattack", norms=("linf", "l2"), components=("apgd-ce", "apgd-t", "fab-t", "square"),
                    queries=5000)


def known_attacks() -> list[str]:
    return [f"{name}-{norm}" for name, entry in ATTACKS.items() for norm in entry.norms]


# The largest eps parse_attack accepts per norm, in pixel units: an linf budget beyond 1 changes nothing on [0, 1]
# images; the l2 limit is a sanity cap against a typo (a 3x224x224 image's whole range has l2 norm about 388).
EPS_LIMITS = {"linf": 1.0, "l2": 100.0}


def parse_attack(text: str) -> AttackSpec:
    """`pgd-linf-1/255` (or `pgd-linf-8/255-roz`) -> AttackSpec; ValueError naming the known attacks when it
    cannot be parsed."""
    space = next((name for name in SPACES if text.endswith(f"-{name}")), None)
    if space is not None:
        text = text[:-len(space) - 1]
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
        units = "pixel units" if space is None else f"{space}-normalized units"
        raise ValueError(f"attack {text!r}: eps must be in (0, {limit:g}] {units} for {norm}, got {eps}")
    return AttackSpec(attack, norm, eps_text, eps, entry.steps, eps * entry.alpha_fraction, entry.restarts,
                      entry.queries, entry.minimum_norm, entry.white_box, space or "pixel", entry.components)


def component_specs(spec: AttackSpec) -> list[AttackSpec]:
    """The attacks a worst-case spec runs, each at its budget, norm and space with its registered steps and
    restarts (its `queries` go to each score-based component)."""
    out = []
    for name in spec.components:
        component = parse_attack(f"{name}-{spec.norm}-{spec.eps_text}")
        out.append(dataclasses.replace(component, space=spec.space, eps=spec.eps,
                                       queries=spec.queries if component.queries else 0))
    return out


def option_names(attack: str) -> tuple[str, ...]:
    """The options (`[tool.robustness.adversarial] options`) attack `attack` takes: a worst case only `queries`
    (its components keep their own steps), an attack with a query budget `queries` too."""
    entry = ATTACKS[attack]
    if entry.components:
        return ("queries",)
    return ("steps", "restarts") + (("queries",) if entry.queries else ())


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
    the perturbations the attack returned (in the spec's norm and units: pixels, or RoZ's normalized space);
    for a worst case, `components` holds each component's `robust` by name."""

    adversarial: torch.Tensor
    clean_correct: torch.Tensor
    robust: torch.Tensor
    norms: torch.Tensor
    components: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def _global_rng_restored() -> Iterator[None]:
    """On exit torch's global generators are back where the caller left them, whatever the block seeded or drew:
    the CPU generator, and every CUDA device's once CUDA is initialized (it is whenever the inputs are on CUDA).
    torchattacks draws from the global generators, and some of its attacks re-seed them themselves."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield


# RoZ clips CLIP-normalized adversarial images to this box, the same for every channel (wang-research-lab/roz,
# scripts/common_adversarial_attack/attack_methods/*.py, `clip_epsilon_ball`: clamp(min=-1.8), clamp(max=2.15)).
ROZ_BOX = (-1.8, 2.15)
ROZ_BOX_FIT = 0.05  # how far inside the box a model's normalized range may end and still be RoZ's protocol
SPACES = ("roz",)


class RozSpace(nn.Module):
    """`classifier` seen from RoZ's attack space, where budgets are stated on normalized images z = (x - mean) /
    std and adversarial images are clipped to ROZ_BOX. Inputs u in [0, 1] stand for z = lo + u (hi - lo), so an
    attack that clips u to [0, 1] clips z to RoZ's box, and an eps of e on z is e / (hi - lo) on u. The pixels
    x = z std + mean it hands the classifier may leave [0, 1] a little where the box is wider than a channel's
    range: RoZ feeds them to the model, and so does this. Needs the classifier's `mean` and `std` (PixelClassifier)."""

    def __init__(self, classifier: nn.Module, name: str):
        super().__init__()
        mean, std = getattr(classifier, "mean", None), getattr(classifier, "std", None)
        if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor):
            raise AttackValidityError(f"{name}: the -roz space needs a classifier that normalizes inside with "
                                      f"`mean` and `std` tensors (harness.models.base.PixelClassifier)")
        low, high = ((0 - mean) / std).min().item(), ((1 - mean) / std).max().item()
        fits_low = ROZ_BOX[0] - 1e-3 <= low <= ROZ_BOX[0] + ROZ_BOX_FIT
        if not (fits_low and ROZ_BOX[1] - ROZ_BOX_FIT <= high <= ROZ_BOX[1] + 1e-3):
            raise AttackValidityError(
                f"{name}: this model's normalized pixels span [{low:.3f}, {high:.3f}], which is not RoZ's box "
                f"{list(ROZ_BOX)} (CLIP's normalization spans [-1.792, 2.146]); state its budget in pixel units")
        self.classifier, self.mean, self.std = classifier, mean, std
        self.low, self.scale = ROZ_BOX[0], ROZ_BOX[1] - ROZ_BOX[0]
        self.train(classifier.training)

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return (((pixels - self.mean) / self.std - self.low) / self.scale).clamp(0, 1)

    def to_pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs * self.scale + self.low) * self.std + self.mean

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.to_pixels(inputs))


@dataclasses.dataclass(frozen=True)
class _Batch:
    """A batch under attack: `images` (N, 3, H, W) in [0, 1] with `labels` (N,), scored on `model`, crafted on
    `source`, of which only the `attacked` indices (correct clean) are attacked; `n_classes` of the logits."""

    model: nn.Module
    source: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    attacked: torch.Tensor
    n_classes: int


def _attack_once(batch: _Batch, spec: AttackSpec, seed: int) -> AttackOutcome:
    """One attack `spec` on `batch`; the images not attacked are returned unchanged and not robust."""
    images, labels, attacked = batch.images, batch.labels, batch.attacked
    adversarial, norms = images.clone(), torch.zeros(len(images), device=images.device)
    correct = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    if attacked.numel():
        view = RozSpace(batch.source, spec.name) if spec.space == "roz" else None
        in_space = spec if view is None else dataclasses.replace(spec, eps=spec.eps / view.scale,
                                                                 alpha=spec.alpha / view.scale)
        inputs = images[attacked] if view is None else view.from_pixels(images[attacked])
        with _global_rng_restored():
            attack = ATTACKS[spec.attack].build(view if view is not None else batch.source, in_space,
                                                batch.n_classes, seed)
            torch.manual_seed(seed)
            crafted = attack(inputs, labels[attacked]).detach()
        check_adversarial(inputs, crafted, in_space)
        norms[attacked] = perturbation_norms(inputs, crafted, spec.norm) * (1 if view is None else view.scale)
        adversarial[attacked] = crafted if view is None else view.to_pixels(crafted)
        with torch.no_grad():
            correct[attacked] = batch.model(adversarial[attacked]).argmax(dim=1) == labels[attacked]
    survived = correct | (norms > spec.eps + 1e-6) if spec.minimum_norm else correct
    return AttackOutcome(adversarial, correct, survived, norms)


def run_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec, seed: int,
               attack_model: nn.Module | None = None) -> AttackOutcome:
    """Attack `images` (N, 3, H, W) in [0, 1] and score `model` on the result; random draws come from `seed`, and
    the caller's global torch RNG state is left as it was.

    `attack_model` crafts the perturbation when it is not `model` (a transfer attack from a surrogate). Only the
    images `model` classifies correctly are attacked, as AutoAttack does: a misclassified image counts as not
    robust whatever the attack does, so attacking it would cost compute and could not change its score; it is
    returned unchanged (norm 0). A worst case (`spec.components`) runs each component with the same seed on
    every attacked image, exactly as that component alone would, and returns, per image, the adversarial image
    of the first component that broke it.
    """
    source = attack_model if attack_model is not None else model
    check_attackable(source, images, labels, spec)
    with torch.no_grad():
        logits = model(images)
    clean_correct, n_classes = logits.argmax(dim=1) == labels, logits.shape[1]
    attacked = clean_correct.nonzero().squeeze(1)
    parts = component_specs(spec) if spec.components else [spec]
    batch = _Batch(model, source, images, labels, attacked, n_classes)
    outcomes = [_attack_once(batch, part, seed) for part in parts]
    if attack_model is None and spec.white_box and attacked.numel():
        for part, outcome in zip(parts, outcomes):
            if part.white_box and (part.bounded or len(parts) == 1) and not (outcome.norms[attacked] > 0).any():
                raise AttackValidityError(f"{part.name}: the attack returned every correctly classified input "
                                          f"unchanged")
    # An image keeps the adversarial image of the first component that broke it; one no component broke keeps
    # the last component's.
    robust, adversarial, norms = clean_correct.clone(), outcomes[-1].adversarial.clone(), outcomes[-1].norms.clone()
    for outcome in reversed(outcomes):
        broken = clean_correct & ~outcome.robust
        adversarial[broken], norms[broken] = outcome.adversarial[broken], outcome.norms[broken]
        robust &= outcome.robust
    components = {part.attack: clean_correct & outcome.robust for part, outcome in zip(parts, outcomes)
                  } if spec.components else {}
    return AttackOutcome(adversarial, clean_correct, clean_correct & robust, norms, components)


CANARY_MIN_CORRECT = 20
COMPONENT = "component:"  # the prefix of a worst case's per-component bits among an attack's Scored columns


def attack_stats(clean_correct: np.ndarray, norms: np.ndarray, components: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """An attack's metrics from its per-sample outcome: the clean accuracy, the median perturbation norm of the
    clean-correct samples (None when there are none) and, for a worst case, each component's accuracy and bits."""

    stats = {"clean_accuracy": float(clean_correct.mean()),
             "median_perturbation_norm": float(np.median(norms[clean_correct])) if clean_correct.any() else None}
    if components:
        stats["components"] = {name: {"accuracy": float(bits.mean()), "per_sample": encode_bits(bits)}
                               for name, bits in components.items()}
    return stats


@dataclasses.dataclass(frozen=True)
class Attack(Perturbation):
    """An adversarial attack `spec` on the model under test, or, with `surrogate` (a model id), crafted on that
    model and transferred. Always scored in float32, never under autocast, so budgets and gradients mean what
    they say. With a `ceiling`, the case is the run's canary: when more than that share of the clean-correct
    samples survive this (large) budget, the attack does not bite, as under gradient masking, and the case fails
    (AttackValidityError)."""

    spec: AttackSpec
    surrogate: str | None = None
    ceiling: float | None = None

    def record(self) -> dict[str, Any]:
        return ({"attack": self.spec.as_dict()} | ({} if self.surrogate is None else {"surrogate": self.surrogate})
                | ({} if self.ceiling is None else {"ceiling": self.ceiling}))

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        return scorer.attack(inputs, self.spec, self.surrogate)

    def summarize(self, scored: Scored) -> dict[str, Any]:
        """The clean accuracy, median perturbation norm and worst-case components (`attack_stats`); the canary
        fails the case here (AttackValidityError)."""
        columns = scored.columns
        stats = attack_stats(columns["clean_correct"], columns["norm"],
                             {name[len(COMPONENT):]: bits for name, bits in columns.items() if name.startswith(COMPONENT)})
        if self.ceiling is not None:
            self._judge_canary(scored.per_sample, stats)
        return stats

    def _judge_canary(self, robust: np.ndarray, stats: dict[str, Any]) -> None:
        """Fail unless at least CANARY_MIN_CORRECT samples were correct clean and at most `ceiling` of them
        survived the attack."""
        scored = Scored(robust, stats)
        clean_correct = round(scored.metrics["clean_accuracy"] * scored.per_sample.size)
        if clean_correct < CANARY_MIN_CORRECT:
            raise AttackValidityError(
                f"canary {self.spec.name}: only {clean_correct} of {scored.per_sample.size} samples are correct "
                f"clean, fewer than the {CANARY_MIN_CORRECT} it needs to tell whether the attack bites; the model "
                f"is broken on clean data, or its benchmark is not the one it was trained for")
        surviving = int(scored.per_sample.sum()) / clean_correct
        if surviving > self.ceiling:
            raise AttackValidityError(
                f"GRADIENT MASKING suspected: {self.spec.name} leaves {surviving:.3f} of the {clean_correct} "
                f"clean-correct samples correct, above the canary's ceiling {self.ceiling}: an undefended model "
                f"collapses under this budget, so gradients are not reaching the input (a detached or "
                f"non-differentiable head, a wrong normalization, a broken attack) and every robust accuracy of "
                f"this model overstates robustness. Check the model's forward pass; a model that is robust by "
                f"design raises the ceiling with [tool.robustness.adversarial] canary_max_accuracy")

    @property
    def autocast(self) -> bool:
        return False


def configured_attack(config: SuiteConfig, section: str, text: str) -> AttackSpec:
    """The spec `text` with the run's `[tool.robustness.adversarial.options]` for its attack (steps, queries,
    restarts); a ConfigError naming `section` when it does not parse or its attack has no such option."""
    try:
        spec = parse_attack(text)
        unknown = sorted(set(config.attack_options) - set(ATTACKS.names()))
        if unknown:
            raise ValueError(f"options for unknown attack(s) {', '.join(unknown)}; known: {', '.join(ATTACKS.names())}")
        options = config.attack_options.get(spec.attack, {})
        refused = sorted(set(options) - set(option_names(spec.attack)))
        if refused:
            raise ValueError(f"options.{spec.attack}: {spec.attack} takes no {', '.join(refused)}; it takes "
                             f"{', '.join(option_names(spec.attack))}")
    except ValueError as error:
        raise config_error(section, error) from None
    return dataclasses.replace(spec, **options)


@register_shift_kind("attack")
def attack_settings(scope: SettingScope) -> list[Setting]:
    """One setting per configured attack (`adversarial.attacks`) on the clean split, then the canary
    (`adversarial.canary`, named `canary-<spec>`) that every model of the run gets."""
    config = scope.config
    settings = [Setting("adversarial", spec.name, scope.clean_split, config.samples_for("adversarial", spec.attack),
                        perturbation=Attack(spec))
                for spec in (configured_attack(config, "adversarial", text) for text in config.attacks)]
    if config.canary:  # "" turns it off, explicitly
        spec = configured_attack(config, "adversarial.canary", config.canary)
        settings.append(Setting("adversarial", f"canary-{spec.name}", scope.clean_split,
                                config.samples_for("adversarial", spec.attack),
                                perturbation=Attack(spec, ceiling=config.canary_max_accuracy)))
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
        spec = configured_attack(scope.config, "adversarial.transfer", text)
        name = f"transfer-{spec.name}-from-{ModelId.parse(surrogate).line}"
        settings.append(Setting("adversarial", name, scope.clean_split,
                                scope.config.samples_for("adversarial", spec.attack),
                                perturbation=Attack(spec, surrogate)))
    return settings
