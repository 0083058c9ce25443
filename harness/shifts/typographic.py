"""Typographic attacks: a misleading class name written on the image (Goh et al. 2021, "Multimodal Neurons").

Each sample gets a written class drawn uniformly from the classes other than its own, and a placement, both from
(seed, sample index) alone. Reported beside accuracy: the attack success rate, the share of samples whose
prediction is the written class.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..embedded.renderer import draw_text
from ..settings import Setting, SettingScope, config_error, register_shift_kind
from .base import Inputs, Perturbation, Scored, Scorer, with_pixels

if TYPE_CHECKING:
    from ..evaluate import RunContext
    from ..models import LoadedModel

COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (230, 30, 30), "yellow": (250, 220, 0)}
POSITIONS = ("random", "center", "top", "bottom")


@dataclasses.dataclass(frozen=True)
class TypographicSpec:
    """`count` copies of the misleading word, `size` in pixels at a 64-pixel image (scaled with the image),
    `colour` one of COLOURS or `random`, `position` one of POSITIONS."""

    count: int = 1
    size: int = 14
    colour: str = "white"
    position: str = "random"

    @property
    def name(self) -> str:
        return f"typographic-{self.count}x{self.size}px-{self.colour}-{self.position}"

    @classmethod
    def parse(cls, text: str) -> "TypographicSpec":
        """`1x14px-white-random` (the part after `typographic-`)."""
        try:
            shape, colour, position = text.split("-")
            count, size = shape.removesuffix("px").split("x")
            spec = cls(int(count), int(size), colour, position)
        except ValueError:
            raise ValueError(f"typographic attack {text!r} is not of the form <count>x<size>px-<colour>-<position>, "
                             f"e.g. 1x14px-white-random") from None
        if spec.colour not in (*COLOURS, "random") or spec.position not in POSITIONS or not (
                1 <= spec.count <= 5 and 4 <= spec.size <= 64):
            raise ValueError(f"typographic attack {text!r}: colour in {sorted(COLOURS) + ['random']}, position in "
                             f"{list(POSITIONS)}, 1 <= count <= 5, 4 <= size <= 64")
        return spec

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


def written_classes(labels: np.ndarray, n_classes: int, seed: int, offset: int = 0) -> np.ndarray:
    """A class other than the true one for every sample, uniform over the others, from (seed, index in the
    split: `offset + i`)."""
    shifts = np.array([np.random.default_rng([seed, 7, offset + i]).integers(1, n_classes) for i in range(len(labels))],
                      dtype=np.int64)
    return (labels + shifts) % n_classes


def overlay(images: np.ndarray, labels: np.ndarray, classnames: Sequence[str], spec: TypographicSpec,
            seed: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) images (samples `offset`, `offset + 1`, ... of their split) with misleading words
    written on them, and the written class of each."""
    written = written_classes(labels, len(classnames), seed, offset)
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    size = max(4, round(spec.size * width / 64))
    for index, (image, target) in enumerate(zip(images, written)):
        rng = np.random.default_rng([seed, 11, offset + index])
        word = classnames[target]
        text_width = int(0.6 * size * len(word))
        for _ in range(spec.count):
            x_room, y_room = max(1, width - text_width), max(1, height - size)
            x, y = {"random": (rng.integers(0, x_room), rng.integers(0, y_room)),
                    "center": ((width - text_width) // 2, (height - size) // 2),
                    "top": ((width - text_width) // 2, 1),
                    "bottom": ((width - text_width) // 2, height - size - 2)}[spec.position]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3)) if spec.colour == "random" else COLOURS[spec.colour]
            image = draw_text(image, word, position=(int(x), int(y)), size=size, color=colour)
        out[index] = image
    return out, written


@dataclasses.dataclass(frozen=True)
class Typographic(Perturbation):
    """A misleading class name written on each image (`spec`); scored by accuracy, with the attack success rate
    (the share of predictions that are the written class) beside it."""

    spec: TypographicSpec

    def record(self) -> dict[str, Any]:
        return {"typographic": self.spec.as_dict()}

    def perturb(self, inputs: Inputs, model: LoadedModel, run: RunContext) -> Inputs:
        images, written = overlay(inputs.images, inputs.data.labels, model.classnames, self.spec, run.seed,
                                  inputs.offset)
        return dataclasses.replace(with_pixels(inputs, images), targets=written)

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        predictions = scorer.predictions(inputs)
        return Scored(inputs.data.correct(predictions), columns={"written_predicted": predictions == inputs.targets})

    def summarize(self, scored: Scored) -> dict[str, Any]:
        return {"attack_success_rate": float(scored.columns["written_predicted"].mean())}


@register_shift_kind("typographic")
def typographic_settings(scope: SettingScope) -> list[Setting]:
    """One adversarial setting per configured overlay (`adversarial.typographic`), on the clean split."""
    settings = []
    for text in scope.config.typographic:
        try:
            spec = TypographicSpec.parse(text)
        except ValueError as error:
            raise config_error("adversarial.typographic", error) from None
        settings.append(Setting("adversarial", spec.name, scope.clean_split,
                                scope.config.samples_for("adversarial", "typographic"), perturbation=Typographic(spec)))
    return settings
