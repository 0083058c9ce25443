"""Evaluation data as the harness sees it, and the benchmark protocol every dataset family implements."""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol

import numpy as np

from ..cache import ArrayCache

if TYPE_CHECKING:
    from ..prompts import Prompts


class DataMissingError(FileNotFoundError):
    """A dataset is absent or partial. The message names the path searched and where to obtain the data. A case
    whose data is missing is reported not run (an error in release mode, --strict-data)."""


class DataMalformedError(ValueError):
    """A dataset folder is present but a metadata file in it is missing, unreadable or not of the release's schema.
    The message names the file and what was expected. Never a skip: the case is an error, with or without
    --strict-data, so a run with the data never passes without measuring it."""


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How a model wants its pixels: resize the shorter side to `resize` with `interpolation`, then center-crop
    `size` x `size` (the ImageNet protocol). Normalization is not here: models normalize inside."""

    size: int
    resize: int
    interpolation: str = "bicubic"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """`images` uint8 (N, H, W, 3), or (N, F, H, W, 3) for frame sequences (anchor at F // 2); `labels` int64 (N,)
    indexes the model's class list (-1: no class of the list fits the sample, which always counts as wrong).
    `class_subset`, when set, lists the class indices the dataset covers (as ImageNet-R's 200): predictions are
    then restricted to them. `label_sets`, when set, is int64 (N, K): the classes that each count as correct for
    sample i (as ObjectNet's), padded with -1, `labels[i]` among them; or (N, F, K) for sequences whose frames
    are each judged on their own classes (ImageNet-Vid-Robust), `labels[i]` among the anchor frame's. A chunk
    of a streamed split (harness.stream) has `offset` the index in the split of its first sample, and its
    provenance describes the chunk."""

    images: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any]
    class_subset: np.ndarray | None = None
    label_sets: np.ndarray | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim not in (4, 5) or self.images.shape[-1] != 3:
            raise ValueError(f"EvalData images must be uint8 (N,H,W,3) or (N,F,H,W,3), got "
                             f"{self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"EvalData labels must be ({len(self.images)},), got {self.labels.shape}")
        if self.label_sets is not None:
            per_frame = self.label_sets.ndim == 3
            anchors = self.label_sets[:, self.label_sets.shape[1] // 2] if per_frame else self.label_sets
            if (self.label_sets.ndim not in (2, 3) or len(self.label_sets) != len(self.labels)
                    or (per_frame and (self.images.ndim != 5 or self.label_sets.shape[1] != self.images.shape[1]))
                    or not (anchors == self.labels[:, None]).any(axis=1).all()):
                raise ValueError("EvalData label_sets must be (N, K), or (N, F, K) for frames, and hold each "
                                 "sample's label among its (anchor frame's) classes")

    def correct(self, predictions: np.ndarray) -> np.ndarray:
        """bool, shaped as `predictions` (N,) or (N, F): the prediction is the label, or in the label set."""
        # predictions are class indices (>= 0), so the -1 of a label or of set padding never matches
        if self.label_sets is None:
            return predictions == self.labels.reshape(-1, *[1] * (predictions.ndim - 1))
        if self.label_sets.ndim == 3:
            return (predictions[..., None] == self.label_sets).any(axis=-1)
        sets = self.label_sets.reshape(len(self.labels), *[1] * (predictions.ndim - 1), -1)
        return (predictions[..., None] == sets).any(axis=-1)


_DIGESTS: dict[tuple[int, ...], tuple[tuple[weakref.ref, ...], str]] = {}
_DIGESTS_LOCK = threading.Lock()  # the prefetch thread hashes chunks too


def content_sha256(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of `arrays`. Remembered per set of read-only arrays (whose bytes
    cannot change) while they live, so the cases sharing cached data hash it once per process; the memo holds
    no array alive."""
    frozen = all(not array.flags.writeable for array in arrays)
    ids = tuple(map(id, arrays))
    with _DIGESTS_LOCK:
        remembered = _DIGESTS.get(ids) if frozen else None
    if remembered is not None and all(ref() is array for ref, array in zip(remembered[0], arrays)):
        return remembered[1]
    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(str((array.dtype, array.shape)).encode())
        hasher.update(np.ascontiguousarray(array).data)
    if frozen:
        with _DIGESTS_LOCK:
            if len(_DIGESTS) >= 256:
                _DIGESTS.pop(next(iter(_DIGESTS)))
            _DIGESTS[ids] = (tuple(weakref.ref(array) for array in arrays), hasher.hexdigest())
    return hasher.hexdigest()


@dataclasses.dataclass(frozen=True)
class NaturalShift:
    """One natural-shift setting: evaluate on `split`, scored top-1 (k is None) or pm-k over frame sequences.
    `id_split`, for a shift over a subset of the benchmark's classes, names the in-distribution split its
    effective robustness is measured against: the clean split over those classes (the ImageNet testbed's
    `val-on-<shift>-classes`, Taori et al.'s definition); None: the clean split itself."""

    name: str
    split: str
    k: int | None = None
    id_split: str | None = None

    @property
    def metric(self) -> str:
        return "top1" if self.k is None else f"pm-{self.k}"


class Benchmark(Protocol):
    name: str
    clean_split: str
    natural_shifts: tuple[NaturalShift, ...]

    def prompts(self) -> "Prompts":
        """The class names (in label order) and prompt templates a zero-shot head is built from by default."""

    def check(self, split: str) -> None:
        """Raise DataMissingError when `split` is not on disk, without decoding anything: run before a model is
        loaded, so that a run without its data stops in seconds, not after hours of loading and head building."""

    def load(self, split: str, n: int, cache: ArrayCache, preprocess: Preprocess) -> EvalData:
        """At most `n` samples of `split` (class-balanced, deterministic), decoded and preprocessed to uint8
        pixels at `preprocess.size`; raises DataMissingError when the data is not on disk."""

    def load_perturbed(self, perturbation: Mapping[str, Any], n: int, cache: ArrayCache,
                       preprocess: Preprocess) -> EvalData | None:
        """The clean split perturbed as `perturbation` (a setting's perturbation record, e.g. {"corruption":
        {"name", "severity"}}) says, pre-rendered on disk by the dataset's authors, or None when the benchmark
        has no such release here (the perturbation is then applied in memory)."""


class StreamingBenchmark(Benchmark, Protocol):
    """A benchmark that can also hand out a split in pieces of data chunks as it decodes them, so a case holds a
    bounded number of images whatever `n` (harness.stream). A benchmark without these methods is streamed by
    cutting what `load` returns."""

    def stream(self, split: str, n: int, cache: ArrayCache, preprocess: Preprocess) -> "Iterator[EvalData]":
        """What `load` returns, as consecutive pieces of data chunks of at most `harness.stream.DATA_CHUNK_SAMPLES`
        samples (`EvalData.offset` set), each with its own provenance (`n` its own); a chunk's last piece
        carries the chunk's `sha256`, and no other piece does (`harness.stream.data_blocks`)."""

    def stream_perturbed(self, perturbation: Mapping[str, Any], n: int, cache: ArrayCache,
                         preprocess: Preprocess) -> "Iterator[EvalData] | None":
        """What `load_perturbed` returns, in chunks as `stream`; None when it would return None."""
