"""ImageNet-C corruptions through `imagecorruptions` (the imaug fork), reproducible per (seed, sample index).

Most corruptions draw from NumPy's global RNG, which is re-seeded before every image; impulse_noise and
glass_blur ignore it and take an explicit `seed`, which is passed. So the same (seed, corruption, severity,
index) gives the same pixels, whichever worker computes them and in whatever order.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

import numpy as np
from imagecorruptions import corrupt, get_corruption_names

from ..cache import ArrayCache
from ..versions import package_version

ALL_CORRUPTIONS = tuple(get_corruption_names("all"))


def check_corruption(name: str, severity: int) -> None:
    if name not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(ALL_CORRUPTIONS)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"corruption severity must be 1..5, got {severity}")


@lru_cache(maxsize=None)
def _takes_seed(name: str) -> bool:
    import imagecorruptions.corruptions as functions

    return "seed" in inspect.signature(getattr(functions, name)).parameters


def _image_seed(seed: int, name: str, severity: int, index: int) -> int:
    sequence = np.random.SeedSequence([seed, ALL_CORRUPTIONS.index(name), severity, index])
    return int(sequence.generate_state(1)[0])


def corrupt_images(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, H, W, 3); image i depends only on (seed, name, severity, i)."""
    check_corruption(name, severity)
    out = np.empty_like(images)
    extra = _takes_seed(name)
    for index, image in enumerate(images):
        image_seed = _image_seed(seed, name, severity, index)
        np.random.seed(image_seed)
        kwargs = {"seed": image_seed} if extra else {}
        out[index] = corrupt(image, severity=severity, corruption_name=name, **kwargs)
    return out


def corrupted(images: np.ndarray, images_sha256: str, name: str, severity: int, seed: int,
              cache: ArrayCache) -> np.ndarray:
    """`corrupt_images`, cached on disk under the content hash of the input and every parameter."""
    key = {"kind": "corruption", "images": images_sha256, "name": name, "severity": severity, "seed": seed,
           "imagecorruptions": package_version("imagecorruptions-imaug")}
    return cache.get_or_compute(key, lambda: {"images": corrupt_images(images, name, severity, seed)})["images"]
