"""Greyscale, a texture/style swap, and ImageNet-P-style perturbation sequences, in exact arithmetic.

Every pixel here is computed with integers (fixed point where a weight is fractional) or with elementwise IEEE
operations followed by an explicit rounding: no BLAS call, no SIMD-dispatched transcendental function and no
library kernel whose summation order depends on the CPU touches a pixel. The same input and seed give the same
bytes on any machine (tests/test_cpu_dispatch.py checks this under several CPU-dispatch settings).

A perturbation sequence turns each image into `FRAMES` frames of a slowly growing or repeated perturbation
(Hendrycks and Dietterich 2019, ImageNet-P). A model is scored by its flip probability: how often its top-1
prediction changes between consecutive frames (for the noise sequence, between each frame and the first, as
ImageNet-P does for noise). Per sample, the gated value is stability: no flip anywhere in the sequence.
All randomness comes from (seed, kind, sample index).
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..config import ConfigError
from ..registry import Registry
from ..settings import Setting, SettingScope, register_shift_kind
from .base import Inputs, Perturbation, Scored, Scorer, with_pixels

if TYPE_CHECKING:
    from ..evaluate import RunContext
    from ..models import LoadedModel

FRAMES = 10
# _KIND_IDS numbers each kind by its position in SEQUENCES + ("stylized",), and the number is in every random draw
# here: reordering, inserting, or appending to SEQUENCES (which moves stylized) changes outputs; a new kind needs an
# id after the existing ones.
SEQUENCES = ("gaussian_noise", "gaussian_blur", "translate", "rotate", "zoom", "brightness")
_KIND_IDS = {name: i for i, name in enumerate(SEQUENCES + ("stylized",))}
_FRACTION_BITS = 16  # fixed-point resolution of blur weights and of sampling positions
_CHUNK = 16  # images per step of the integer kernels

# (uint8 (N, H, W, 3) images, seed, offset: the split index of images[0]) -> same shape
TransformFunction = Callable[[np.ndarray, int, int], np.ndarray]
TRANSFORMS: Registry[TransformFunction] = Registry("transform")  # the `synthetic.transforms` a config may name


def register_transform(name: str) -> Callable[[TransformFunction], TransformFunction]:
    """Decorator: register a whole-image shift `(images, seed, offset) -> images` (uint8 (N, H, W, 3); image i is
    sample `offset + i` of its split, and may depend on that index only) as transform `name` and return it
    unchanged; a name already registered is refused (DuplicateNameError)."""
    return TRANSFORMS.register(name)


def _luma(images: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint8 (...): ITU-R 601 luma, (299 R + 587 G + 114 B) / 1000 rounded half up."""
    rgb = images.astype(np.int32)
    return ((299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000).astype(np.uint8)


def greyscale(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> the same shape, each pixel replaced by its ITU-R 601 luma in all three channels."""
    return np.repeat(_luma(images)[..., None], 3, axis=-1)


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 101, _KIND_IDS[kind], index])


@register_transform("greyscale")
def _greyscale(images: np.ndarray, seed: int, offset: int) -> np.ndarray:
    return greyscale(images)


@register_transform("stylized")
def stylized(images: np.ndarray, seed: int, offset: int = 0) -> np.ndarray:
    """A style swap that keeps shape and drops colour and texture cues, as Stylized-ImageNet does with paintings:
    each image's luminance is quantized to a few levels, painted with a random palette, and overlaid with a random
    smooth brush texture. uint8 (N, H, W, 3) -> same shape."""
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for index, image in enumerate(images):
        rng = _rng(seed, "stylized", offset + index)
        levels = int(rng.integers(3, 6))
        bands = np.minimum(_luma(image).astype(np.int64) * levels // 255, levels - 1)
        palette = rng.integers(0, 256, size=(levels, 3)).astype(np.float64)
        coarse = rng.normal(0, 1, size=(height // 8 + 1, width // 8 + 1, 3))
        texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width]
        painted = np.floor(palette[bands] + 28.0 * texture)
        out[index] = np.clip(painted, 0, 255).astype(np.uint8)
    return out


def _blur_weights(sigma: float, radius: int) -> np.ndarray:
    """A Gaussian kernel of 2 * radius + 1 integer taps summing to 2**_FRACTION_BITS. Rounding to 1/65536 makes
    the taps independent of the last bit of `exp`, whichever libm computes it."""
    raw = [math.exp(-(i * i) / (2.0 * sigma * sigma)) for i in range(-radius, radius + 1)]
    taps = np.array([round(w / sum(raw) * (1 << _FRACTION_BITS)) for w in raw], np.int64)
    taps[radius] += (1 << _FRACTION_BITS) - int(taps.sum())
    return taps


def _gaussian_blur(images: np.ndarray, sigma: float, radius: int = 3) -> np.ndarray:
    """Separable blur of uint8 (N, H, W, 3) with reflected borders (as torchvision's), in integers."""
    taps = _blur_weights(sigma, radius)
    padded = np.pad(images.astype(np.int64), ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    height, width = images.shape[1:3]
    rows = sum(int(t) * padded[:, :, i:i + width] for i, t in enumerate(taps))
    total = sum(int(t) * rows[:, i:i + height] for i, t in enumerate(taps))
    half = 1 << (2 * _FRACTION_BITS - 1)
    return ((total + half) >> (2 * _FRACTION_BITS)).astype(np.uint8)


def _affine(images: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    """Rotate uint8 (N, H, W, 3) counter-clockwise by `degrees` and zoom by `scale` about the image centre,
    bilinear, outside filled with 0. Source positions are fixed point with 17 fractional bits; the matrix
    entries are rounded to 1/65536 first, so the last bit of `cos` and `sin` cannot move a pixel."""
    one = 1 << _FRACTION_BITS
    theta = math.radians(degrees)
    cos_q, sin_q = round(math.cos(theta) / scale * one), round(math.sin(theta) / scale * one)
    height, width = images.shape[1:3]
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    dx, dy = 2 * x - (width - 1), 2 * y - (height - 1)  # offsets from the centre, in half pixels
    # Inverse map (y points down): source = R(theta)^-1 / scale * (destination - centre) + centre, in 2**-17 px.
    src_x = cos_q * dx + sin_q * dy + (width - 1) * one
    src_y = cos_q * dy - sin_q * dx + (height - 1) * one
    unit = 2 * one
    x0, y0 = src_x // unit, src_y // unit
    fx, fy = src_x - x0 * unit, src_y - y0 * unit
    padded = np.pad(images.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))

    def tap(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (yy >= -1) & (yy <= height) & (xx >= -1) & (xx <= width)
        return np.where(inside[..., None], padded[:, np.clip(yy + 1, 0, height + 1), np.clip(xx + 1, 0, width + 1)], 0)

    total = ((unit - fx) * (unit - fy))[..., None] * tap(y0, x0) + (fx * (unit - fy))[..., None] * tap(y0, x0 + 1) \
        + ((unit - fx) * fy)[..., None] * tap(y0 + 1, x0) + (fx * fy)[..., None] * tap(y0 + 1, x0 + 1)
    shift = 2 * (_FRACTION_BITS + 1)
    return ((total + (1 << (shift - 1))) >> shift).astype(np.uint8)


def _translate(images: np.ndarray, pixels: int) -> np.ndarray:
    """Shift right by `pixels`, the uncovered columns filled with 0."""
    out = np.zeros_like(images)
    out[:, :, pixels:] = images[:, :, :images.shape[2] - pixels]
    return out


def _frame(images: np.ndarray, kind: str, step: int) -> np.ndarray:
    """Frame `step` (0-based) of a deterministic sequence for uint8 (N, H, W, 3) images."""
    if kind == "gaussian_blur":
        return _gaussian_blur(images, sigma=0.3 + 0.15 * step)
    if kind == "translate":
        return _translate(images, step)
    if kind == "rotate":
        return _affine(images, degrees=2.0 * step, scale=1.0)
    if kind == "zoom":
        return _affine(images, degrees=0.0, scale=1.0 + 0.03 * step)
    if kind == "brightness":  # x * (1 + 0.06 step), rounded half up, clipped
        return np.minimum((images.astype(np.int64) * (100 + 6 * step) + 50) // 100, 255).astype(np.uint8)
    raise ValueError(f"unknown perturbation sequence {kind!r}; known: {', '.join(SEQUENCES)}")


def sequences(images: np.ndarray, kind: str, seed: int, offset: int = 0) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, FRAMES, H, W, 3), image i being sample `offset + i` of its split; frame 0
    is the clean image except for noise."""
    if kind not in SEQUENCES:
        raise ValueError(f"unknown perturbation sequence {kind!r}; known: {', '.join(SEQUENCES)}")
    if kind == "gaussian_noise":
        noise = np.stack([_rng(seed, kind, offset + index).normal(0, 0.04 * 255, size=(FRAMES, *images.shape[1:]))
                          for index in range(len(images))])
        return np.clip(np.rint(images[:, None].astype(np.float64) + noise), 0, 255).astype(np.uint8)
    out = np.empty((len(images), FRAMES, *images.shape[1:]), np.uint8)
    for start in range(0, len(images), _CHUNK):  # bounds the int64 intermediates at ImageNet sizes
        for step in range(FRAMES):
            out[start:start + _CHUNK, step] = _frame(images[start:start + _CHUNK], kind, step)
    return out


def flips(predictions: np.ndarray, kind: str) -> np.ndarray:
    """Per sample, the number of prediction flips in (N, FRAMES) predictions: between consecutive frames, or
    between each frame and the first for the noise sequence."""
    if kind == "gaussian_noise":
        return (predictions[:, 1:] != predictions[:, :1]).sum(axis=1)
    return (predictions[:, 1:] != predictions[:, :-1]).sum(axis=1)


@dataclasses.dataclass(frozen=True)
class Transform(Perturbation):
    """A whole-image shift without severity, registered in TRANSFORMS (greyscale, stylized); the benchmark's
    pre-rendered version is used instead where it has one (Stylized-ImageNet)."""

    name: str

    def __post_init__(self) -> None:
        TRANSFORMS.get(self.name)

    def record(self) -> dict[str, Any]:
        return {"transform": self.name}

    def perturb(self, inputs: Inputs, model: LoadedModel, run: RunContext) -> Inputs:
        return with_pixels(inputs, TRANSFORMS[self.name](inputs.images, run.seed, inputs.offset))


@dataclasses.dataclass(frozen=True)
class FrameSequence(Perturbation):
    """An ImageNet-P-style sequence of `FRAMES` frames of perturbation `kind` (one of SEQUENCES) per image,
    scored by stability: a sample is correct when the model's prediction never flips along its sequence."""

    kind: str

    def __post_init__(self) -> None:
        if self.kind not in SEQUENCES:
            raise ValueError(f"unknown perturbation sequence {self.kind!r}; known: {', '.join(SEQUENCES)}")

    def record(self) -> dict[str, Any]:
        return {"sequence": {"kind": self.kind, "frames": FRAMES}}

    @property
    def metric(self) -> str:
        return "stability"

    def perturb(self, inputs: Inputs, model: LoadedModel, run: RunContext) -> Inputs:
        return with_pixels(inputs, sequences(inputs.images, self.kind, run.seed, inputs.offset))

    @property
    def frames(self) -> int:
        return FRAMES

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        predictions = scorer.predictions(inputs)
        flipped = flips(predictions, self.kind)
        return Scored(flipped == 0, columns={"flips": flipped, "first_frame_correct": predictions[:, 0] == inputs.data.labels})

    def summarize(self, scored: Scored) -> dict[str, Any]:
        flipped, first = scored.columns["flips"], scored.columns["first_frame_correct"]
        return {"flip_probability": float(flipped.sum() / (flipped.size * (FRAMES - 1))),
                "accuracy_first_frame": float(first.mean())}


@register_shift_kind("transform")
def transform_settings(scope: SettingScope) -> list[Setting]:
    """One setting per configured whole-image transform (`synthetic.transforms`), on the clean split."""
    for name in scope.config.transforms:
        if name not in TRANSFORMS:
            raise ConfigError(f"[tool.robustness.synthetic]: unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
    return [Setting("synthetic", name, scope.clean_split, scope.config.samples_for("synthetic"),
                    perturbation=Transform(name)) for name in scope.config.transforms]


@register_shift_kind("sequence")
def sequence_settings(scope: SettingScope) -> list[Setting]:
    """`p-<kind>` per configured perturbation sequence (`synthetic.sequences`), on the clean split."""
    for kind in scope.config.sequences:
        if kind not in SEQUENCES:
            raise ConfigError(f"[tool.robustness.synthetic]: unknown perturbation sequence {kind!r}; known: "
                              f"{', '.join(SEQUENCES)}")
    return [Setting("synthetic", f"p-{kind}", scope.clean_split, scope.config.samples_for("synthetic"),
                    perturbation=FrameSequence(kind)) for kind in scope.config.sequences]
