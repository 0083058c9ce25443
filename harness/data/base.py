"""Evaluation data as the harness sees it, and the benchmark protocol every dataset family implements."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Protocol

import numpy as np

from ..cache import ArrayCache


@dataclasses.dataclass(frozen=True)
class EvalData:
    """`images` uint8 (N, H, W, 3), or (N, F, H, W, 3) for frame sequences (anchor at F // 2); `labels` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim not in (4, 5) or self.images.shape[-1] != 3:
            raise ValueError(f"EvalData images must be uint8 (N,H,W,3) or (N,F,H,W,3), got "
                             f"{self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"EvalData labels must be ({len(self.images)},), got {self.labels.shape}")

    @property
    def is_sequence(self) -> bool:
        return self.images.ndim == 5


def content_sha256(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class NaturalShift:
    """One natural-shift setting: evaluate on `split`, scored top-1 (k is None) or pm-k over frame sequences."""

    name: str
    split: str
    k: int | None = None

    @property
    def metric(self) -> str:
        return "top1" if self.k is None else f"pm-{self.k}"


class Benchmark(Protocol):
    name: str
    clean_split: str
    natural_shifts: tuple[NaturalShift, ...]

    def load(self, split: str, n: int, cache: ArrayCache) -> EvalData:
        """The first `n` samples of `split` (class-balanced), decoded to uint8 pixels at the model input size."""
