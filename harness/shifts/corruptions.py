"""ImageNet-C corruptions through `imagecorruptions` (the imaug fork), reproducible per (seed, sample index).

Most corruptions draw from NumPy's global RNG, which is re-seeded before every image; impulse_noise and
glass_blur ignore it and take an explicit `seed`, which is passed. So the same (seed, corruption, severity,
index) gives the same pixels, whichever worker computes them and in whatever order.

Across machines the recipe, not the bytes, is the contract. imagecorruptions computes through NumPy, SciPy,
scikit-image and OpenCV, whose kernels are chosen by the CPU at run time; on one machine NumPy's AVX-512 `exp`
and `sin` move motion_blur and gaussian_blur by one grey level in up to 7% of values, and OpenCV's SIMD level moves
defocus_blur and snow (README, "Portability"). The one such switch that can be thrown inside a running process is
thrown here: Intel IPP, whose resize gave frost other bytes on every image, is off while a corruption is computed.
A corruption's `recipe` (the clean data's hash, corruption, severity, seed and the version of every library that
computes its pixels) is what a baseline compares; a byte drift under the same recipe is recorded and shown, and
the paired test decides.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator

import cv2
import numpy as np

from ..cache import ArrayCache
from ..pixels import image_digests
from ..settings import Setting, SettingScope, config_error, register_shift_kind
from ..versions import pixel_library_versions
from .base import Inputs, Perturbation, with_pixels

if TYPE_CHECKING:
    from ..evaluate import RunContext
    from ..models import LoadedModel

# imagecorruptions' get_corruption_names("all"), in its order (a corruption's index seeds its noise), written out
# so the suite starts without importing the library (numba among its imports, about 0.7 s); a test keeps the two
# equal.
ALL_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                   "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
                   "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate")


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


@contextlib.contextmanager
def _without_ipp() -> Iterator[None]:
    """OpenCV's own kernels instead of Intel IPP's, whose code path depends on the CPU's vendor and features."""
    previous = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(previous)


def corrupt_images(images: np.ndarray, name: str, severity: int, seed: int, offset: int = 0,
                   workers: int = 1) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, H, W, 3); image i, sample `offset + i` of its split, depends only on
    (seed, name, severity, offset + i), so `workers` > 1 processes (`corruption_pool`), each corrupting a
    contiguous slice, give the bytes one process gives."""
    check_corruption(name, severity)
    if workers > 1 and len(images) > 1:
        bounds = np.linspace(0, len(images), min(workers, len(images)) + 1).astype(int)
        pool = corruption_pool(workers)
        slices = [pool.submit(corrupt_images, images[a:b], name, severity, seed, offset + a)
                  for a, b in zip(bounds[:-1], bounds[1:])]
        return np.concatenate([part.result() for part in slices])
    from imagecorruptions import corrupt

    out = np.empty_like(images)
    extra = _takes_seed(name)
    with _without_ipp():
        for index, image in enumerate(images):
            image_seed = _image_seed(seed, name, severity, offset + index)
            np.random.seed(image_seed)
            kwargs = {"seed": image_seed} if extra else {}
            out[index] = corrupt(image, severity=severity, corruption_name=name, **kwargs)
    return out


_POOLS: dict[int, ProcessPoolExecutor] = {}


def corruption_pool(workers: int) -> ProcessPoolExecutor:
    """This process's pool of `workers` corruption processes, started once (forkserver: the children begin from
    a clean interpreter, not a copy of one running torch's threads) and reused by every later case."""
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    return _POOLS[workers]


def corruption_workers(configured: int) -> int:
    """Processes a case corrupts with: `configured`, or for 0 ("auto") this machine's cores shared among the
    run's xdist workers (PYTEST_XDIST_WORKER_COUNT), at least 1."""
    if configured:
        return configured
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def recipe(images_sha256: str, name: str, severity: int, seed: int) -> dict[str, Any]:
    """Everything the pixels of a library corruption are a function of, on any CPU."""
    return {"clean_sha256": images_sha256, "corruption": name, "severity": severity, "seed": seed,
            "libraries": pixel_library_versions()}


def corrupted(images: np.ndarray, pixel_recipe: dict[str, Any], cache: ArrayCache | None, offset: int = 0,
              remember: bool = True, workers: int = 1) -> np.ndarray:
    """`corrupt_images` of `images` (whose hash is the recipe's `clean_sha256`), the chunk of its split from
    sample `offset`, on `workers` processes, cached on disk under its recipe (computed afresh without a cache;
    not kept in memory with `remember=False`)."""
    key = {"kind": "corruption", "images": pixel_recipe["clean_sha256"], "recipe": pixel_recipe, "ipp": "off",
           **({"offset": offset} if offset else {})}
    name, severity, seed = pixel_recipe["corruption"], pixel_recipe["severity"], pixel_recipe["seed"]
    if cache is None:
        return corrupt_images(images, name, severity, seed, offset, workers)
    return cache.get_or_compute(key, lambda: {"images": corrupt_images(images, name, severity, seed, offset,
                                                                       workers)},
                                remember, pixels=True)["images"]


@dataclasses.dataclass(frozen=True)
class Corruption(Perturbation):
    """An ImageNet-C corruption `name` at `severity` 1-5 (imagecorruptions), applied in memory unless the benchmark
    has it pre-rendered on disk. Its pixels depend on CPU-dispatched library kernels, so the case keeps its recipe
    and per-image digests (harness.pixels) beside the pixels' hash."""

    name: str
    severity: int

    def __post_init__(self) -> None:
        check_corruption(self.name, self.severity)

    def record(self) -> dict[str, Any]:
        return {"corruption": {"name": self.name, "severity": self.severity}}

    def perturb(self, inputs: Inputs, model: LoadedModel, run: RunContext) -> Inputs:
        pixel_recipe = recipe(inputs.provenance["sha256"], self.name, self.severity, run.seed)
        images = corrupted(inputs.images, pixel_recipe, run.cache, inputs.offset, remember=inputs.offset == 0,
                           workers=corruption_workers(run.corruption_workers))
        return with_pixels(inputs, images, pixel_recipe=pixel_recipe, perturbed_source="in memory (imagecorruptions)",
                           image_digests=image_digests(images))


@register_shift_kind("corruption")
def corruption_settings(scope: SettingScope) -> list[Setting]:
    """`<corruption>-<severity>` for every configured corruption and severity, on the clean split."""
    settings = []
    for name in scope.config.corruptions:
        for severity in scope.config.severities:
            try:
                perturbation = Corruption(name, severity)
            except ValueError as error:
                raise config_error("synthetic", error) from None
            settings.append(Setting("synthetic", f"{name}-{severity}", scope.clean_split,
                                    scope.config.samples_for("synthetic"), perturbation=perturbation))
    return settings
