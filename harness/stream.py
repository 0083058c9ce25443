"""A split streamed in chunks: how big a chunk is, how chunks are prefetched, re-cut for scoring and hashed.

Three sizes are at work. A *data chunk* holds at most DATA_CHUNK_SAMPLES samples (images, or frame sequences) and
is the unit a benchmark caches and hashes and a perturbation that makes pixels perturbs; its size is fixed by
the protocol, never by the run, so a split's hash (`hash_list`) and its cached entries do not depend on the batch
size. A benchmark hands a data chunk on in *pieces* (at most PIECE_SAMPLES each, where it decodes; the whole
chunk otherwise), as soon as each is decoded, so that scoring starts before a chunk is complete: a stream is a
sequence of pieces, and a data chunk ends at the piece whose provenance carries its `sha256` (`data_blocks`
joins them back). A *scoring chunk* is re-cut from the perturbed stream (`rechunked`) to start on a batch
boundary, so every forward pass and attack sees the same images, under the same seed, as a run that held the
whole split at once. A worker holds about two data chunks at a time (the one being scored and the next, being
decoded, perturbed and re-cut a scoring chunk ahead: `prefetched`), plus the remainder carried over when the
batch size does not divide a chunk, whatever the split's size.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from .data.base import EvalData
from .pixels import merged_digests

DATA_CHUNK_SAMPLES = 500  # frame sequences too: Vid-Robust and YTBB-Robust have a few thousand anchors in all
PIECE_SAMPLES = 50  # the grain a chunk is decoded and handed on in; results and hashes do not depend on it
SCORING_MIN_IMAGES = 250  # the fewest images a scoring chunk (one prediction entry) holds; the default batch
HASH_LIST = "sha256-list:"  # the prefix of a split's hash when it was streamed in more than one data chunk

T = TypeVar("T")


def hash_list(digests: Sequence[str]) -> str:
    """The hash of a split streamed as data chunks with content hashes `digests`, in order: the one chunk's own
    hash for a single chunk (a split of at most a data chunk is hashed as a whole), else `HASH_LIST` and the
    sha256 over the chunks' hashes."""
    if len(digests) == 1:
        return digests[0]
    return HASH_LIST + hashlib.sha256("\n".join(digests).encode()).hexdigest()


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """`items`, each produced by a background thread while the consumer works on the one before, so that
    decoding and perturbing the next chunk overlaps scoring this one. The producer starts item k + 1 only once
    the consumer has taken item k, so at most two items live at a time. An exception in the producer is raised
    in the consumer at the item it stopped at; a consumer that stops early stops the producer."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop, taken = threading.Event(), threading.Semaphore(0)

    def produce() -> None:
        iterator = None
        try:
            iterator = iter(items)
            while not stop.is_set():
                try:
                    item = ("item", next(iterator))
                except StopIteration:
                    item = ("end", None)
                handoff.put(item)
                while not taken.acquire(timeout=0.1) and not stop.is_set():
                    pass
                if item[0] == "end":
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            handoff.put(("error", error))
        finally:  # a producer that stops early finalizes its items (a generator's open files and threads) here
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="robustness-gate-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = handoff.get()
            taken.release()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        taken.release()  # a producer waiting for its item to be taken sees `stop` now, not at its next poll
        while producer.is_alive():
            try:
                handoff.get_nowait()  # unblocks a producer putting an item nobody will take
            except queue.Empty:
                producer.join(timeout=0.01)


def joined_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """`np.concatenate(arrays)`, as a read-only view where they are read-only, consecutive rows of one
    C-contiguous array (the pieces of a data chunk are views of the chunk's buffer, each row written once and
    frozen): a 250-image scoring chunk at 224 px is 38 MB, and a fresh copy of it cost 90 ms of page faults here,
    on the way to the first batch."""
    base = arrays[0].base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous or not base.shape[0]:
        return np.concatenate(arrays)
    address, row = arrays[0].ctypes.data, base.strides[0]
    if (address - base.ctypes.data) % row:
        return np.concatenate(arrays)
    for array in arrays:
        if array.base is not base or array.flags.writeable or not array.flags.c_contiguous or \
                array.ndim != base.ndim or array.dtype != base.dtype or array.shape[1:] != base.shape[1:] or \
                array.ctypes.data != address:
            return np.concatenate(arrays)
        address += array.nbytes
    start = (arrays[0].ctypes.data - base.ctypes.data) // row
    view = base[start:start + sum(len(array) for array in arrays)]
    view.flags.writeable = False
    return view


def concatenated(parts: Sequence[EvalData]) -> EvalData:
    """Consecutive chunks of one split as one chunk (images, labels, label sets padded to the widest, offset of
    the first); provenance is the first part's."""
    if len(parts) == 1:
        return parts[0]
    label_sets = None
    if parts[0].label_sets is not None:
        width = max(part.label_sets.shape[-1] for part in parts)
        label_sets = np.concatenate([np.pad(part.label_sets, [(0, 0)] * (part.label_sets.ndim - 1)
                                            + [(0, width - part.label_sets.shape[-1])], constant_values=-1)
                                     for part in parts])
    return EvalData(joined_rows([part.images for part in parts]), np.concatenate([part.labels for part in parts]),
                    parts[0].provenance, parts[0].class_subset, label_sets, parts[0].offset)


def joined(chunks: Iterable[EvalData]) -> EvalData:
    """A streamed split as one EvalData, its provenance merged (`ProvenanceMerge`): what `Benchmark.load`
    returns for a benchmark that streams."""
    parts, merge = [], ProvenanceMerge()
    for chunk in chunks:
        parts.append(chunk)
        merge.add(chunk.provenance, len(chunk.labels))
    return dataclasses.replace(concatenated(parts), provenance=merge.result())


def data_chunks(benchmark: Any, split: str, n: int, cache: Any, preprocess: Any) -> Iterator[EvalData]:
    """`split` of `benchmark` streamed in pieces of data chunks: its own `stream` where it has one; else what
    `load` returns, cut into whole data chunks hashed as `content_sha256(images, labels[, label_sets])` (one
    chunk: `load`'s record as is)."""
    if hasattr(benchmark, "stream"):
        return benchmark.stream(split, n, cache, preprocess)
    return _cut(benchmark.load(split, n, cache, preprocess))


def perturbed_chunks(benchmark: Any, perturbation: Mapping[str, Any], n: int, cache: Any,
                     preprocess: Any) -> Iterator[EvalData] | None:
    """The benchmark's pre-rendered `perturbation` streamed as `data_chunks`; None when it has none."""
    if hasattr(benchmark, "stream_perturbed"):
        return benchmark.stream_perturbed(perturbation, n, cache, preprocess)
    data = benchmark.load_perturbed(perturbation, n, cache, preprocess)
    return None if data is None else _cut(data)


def ends_chunk(piece: EvalData) -> bool:
    """Whether `piece` is the last of its data chunk: it carries the chunk's hash."""
    return "sha256" in piece.provenance


def data_blocks(pieces: Iterable[EvalData]) -> Iterator[EvalData]:
    """A stream of pieces as whole data chunks: consecutive pieces joined up to each chunk's end (`ends_chunk`),
    their provenance merged (`ProvenanceMerge`); a chunk handed on whole passes as it is."""
    parts: list[EvalData] = []
    for piece in pieces:
        parts.append(piece)
        if ends_chunk(piece):
            yield parts[0] if len(parts) == 1 else joined(parts)
            parts = []
    if parts:
        raise ValueError(f"a stream ended inside a data chunk (at split index {parts[-1].offset}, its last piece "
                         f"carries no sha256): its benchmark's stream breaks harness.stream's contract")


def _cut(data: EvalData) -> Iterator[EvalData]:
    from .data.base import content_sha256

    size = DATA_CHUNK_SAMPLES
    if len(data.labels) <= size:
        yield data
        return
    for start in range(0, len(data.labels), size):
        chunk = sliced(data, start, start + size)
        arrays = [chunk.images, chunk.labels] + ([] if chunk.label_sets is None else [chunk.label_sets])
        yield dataclasses.replace(chunk, provenance={**data.provenance, "n": len(chunk.labels),
                                                     "sha256": content_sha256(*arrays)})


def sliced(data: EvalData, start: int, stop: int) -> EvalData:
    """Samples [start, stop) of chunk `data` (indices within the chunk) as a chunk of their own."""
    return EvalData(data.images[start:stop], data.labels[start:stop], data.provenance, data.class_subset,
                    None if data.label_sets is None else data.label_sets[start:stop], data.offset + start)


def scoring_unit(batch_size: int, frames: int) -> int:
    """The fewest samples of `frames` images each that fill whole batches of `batch_size` images and hold at
    least SCORING_MIN_IMAGES images. Batches and their seeds start on the split's batch boundaries, so the unit
    changes no result; the floor keeps a small batch size from cutting a split into a prediction entry per
    piece."""
    unit = batch_size // math.gcd(batch_size, frames)
    return unit * math.ceil(SCORING_MIN_IMAGES / (unit * frames))


def rechunked(chunks: Iterable[T], size: Callable[[T], int], cut: Callable[[T, int, int], T],
              join: Callable[[Sequence[T]], T], unit: Callable[[T], int]) -> Iterator[T]:
    """`chunks` re-cut so that every piece but the last holds a multiple of `unit(first chunk)` samples and
    starts at such a multiple of the stream: pieces are emitted as soon as a whole number of units is buffered,
    the remainder carried into the next."""
    carried: list[T] = []
    held, step = 0, None
    for chunk in chunks:
        step = unit(chunk) if step is None else step
        carried.append(chunk)
        held += size(chunk)
        whole = held // step * step
        if whole == 0:
            continue
        joined = join(carried)
        yield cut(joined, 0, whole) if whole < held else joined
        carried = [cut(joined, whole, held)] if whole < held else []
        held -= whole
    if carried and held:
        yield join(carried)


@dataclasses.dataclass
class ProvenanceMerge:
    """The provenance of a streamed split, folded chunk by chunk: the first chunk's record, with `n` summed,
    `unreadable_files` and `image_digests` joined, and every hash key (`HASHED`) replaced by the hash list of its chunks' values."""

    HASHED = ("sha256", "perturbed_sha256")

    first: dict[str, Any] | None = None
    n: int = 0
    digests: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    unreadable: list[str] = dataclasses.field(default_factory=list)
    image_digests: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, provenance: Mapping[str, Any], n: int) -> None:
        if self.first is None:
            self.first = dict(provenance)
        self.n += n
        for key in self.HASHED:
            if key in provenance:
                self.digests.setdefault(key, []).append(provenance[key])
        self.unreadable += provenance.get("unreadable_files", [])
        if "image_digests" in provenance:
            self.image_digests.append(provenance["image_digests"])

    def result(self) -> dict[str, Any]:
        merged = dict(self.first or {})
        if "n" in merged:
            merged["n"] = self.n
        if "unreadable_files" in merged:
            merged["unreadable_files"] = self.unreadable
        for key, digests in self.digests.items():
            merged[key] = hash_list(digests)
        if len(self.image_digests) > 1:
            merged["image_digests"] = merged_digests(self.image_digests)
        if "pixel_recipe" in merged and "sha256" in merged:
            merged["pixel_recipe"] = {**merged["pixel_recipe"], "clean_sha256": merged["sha256"]}
        return merged
