"""Greyscale, a texture/style swap, and ImageNet-P-style perturbation sequences.

A perturbation sequence turns each image into `FRAMES` frames of a slowly growing or repeated perturbation
(Hendrycks and Dietterich 2019, ImageNet-P). A model is scored by its flip probability: how often its top-1
prediction changes between consecutive frames (for the noise sequence, between each frame and the first, as
ImageNet-P does for noise). Per sample, the gated value is stability: no flip anywhere in the sequence.
All randomness comes from (seed, kind, sample index).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

FRAMES = 10
SEQUENCES = ("gaussian_noise", "gaussian_blur", "translate", "rotate", "zoom", "brightness")
_KIND_IDS = {name: i for i, name in enumerate(SEQUENCES + ("stylized",))}


def greyscale(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> the same shape, each pixel replaced by its ITU-R 601 luma in all three channels."""
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat(np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 101, _KIND_IDS[kind], index])


def stylized(images: np.ndarray, seed: int) -> np.ndarray:
    """A style swap that keeps shape and drops colour and texture cues, as Stylized-ImageNet does with paintings:
    each image's luminance is quantized to a few levels, painted with a random palette, and overlaid with a random
    smooth brush texture. uint8 (N, H, W, 3) -> same shape."""
    out = np.empty_like(images)
    height, width = images.shape[1:3]
    for index, image in enumerate(images):
        rng = _rng(seed, "stylized", index)
        levels = int(rng.integers(3, 6))
        luma = greyscale(image[None])[0, ..., 0].astype(np.float32) / 255
        bands = np.minimum((luma * levels).astype(np.int64), levels - 1)
        palette = rng.integers(0, 256, size=(levels, 3)).astype(np.float32)
        coarse = rng.normal(0, 1, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
        texture = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:height, :width]
        painted = palette[bands] + 28 * texture
        out[index] = np.clip(painted, 0, 255).astype(np.uint8)
    return out


def _frame(batch: torch.Tensor, kind: str, step: int) -> torch.Tensor:
    """Frame `step` (0-based) of a deterministic sequence for a uint8 (N, 3, H, W) batch."""
    if kind == "gaussian_blur":
        sigma = 0.3 + 0.15 * step
        return F.gaussian_blur(batch, kernel_size=[7, 7], sigma=[sigma, sigma])
    if kind == "translate":
        return F.affine(batch, angle=0.0, translate=[step, 0], scale=1.0, shear=[0.0, 0.0])
    if kind == "rotate":
        return F.affine(batch, angle=2.0 * step, translate=[0, 0], scale=1.0, shear=[0.0, 0.0],
                        interpolation=F.InterpolationMode.BILINEAR)
    if kind == "zoom":
        return F.affine(batch, angle=0.0, translate=[0, 0], scale=1.0 + 0.03 * step, shear=[0.0, 0.0],
                        interpolation=F.InterpolationMode.BILINEAR)
    if kind == "brightness":
        return F.adjust_brightness(batch, 1.0 + 0.06 * step)
    raise ValueError(f"unknown perturbation sequence {kind!r}; known: {', '.join(SEQUENCES)}")


def sequences(images: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, FRAMES, H, W, 3); frame 0 is the clean image except for noise."""
    if kind not in SEQUENCES:
        raise ValueError(f"unknown perturbation sequence {kind!r}; known: {', '.join(SEQUENCES)}")
    if kind == "gaussian_noise":
        noise = np.stack([_rng(seed, kind, index).normal(0, 0.04 * 255, size=(FRAMES, *images.shape[1:]))
                          for index in range(len(images))]).astype(np.float32)
        return np.clip(np.round(images[:, None].astype(np.float32) + noise), 0, 255).astype(np.uint8)
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    frames = [_frame(batch, kind, step).permute(0, 2, 3, 1) for step in range(FRAMES)]
    return torch.stack(frames, dim=1).contiguous().numpy()


TRANSFORMS = {"greyscale": lambda images, seed: greyscale(images), "stylized": stylized}


def flips(predictions: np.ndarray, kind: str) -> np.ndarray:
    """Per sample, the number of prediction flips in (N, FRAMES) predictions: between consecutive frames, or
    between each frame and the first for the noise sequence."""
    if kind == "gaussian_noise":
        return (predictions[:, 1:] != predictions[:, :1]).sum(axis=1)
    return (predictions[:, 1:] != predictions[:, :-1]).sum(axis=1)
