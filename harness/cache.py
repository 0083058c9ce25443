"""A content-addressed disk cache of numpy arrays, safe when several xdist workers ask for the same entry.

The key is a JSON-able dict that must name everything the value depends on (code version, parameters, seed);
its sha256 names the file. The first worker computes and writes atomically; the others wait on the lock and read.
Within a process, entries are also kept in memory (least recently used first out, at most MEMORY_BYTES), so the
cases of one split share one read. Arrays come back read-only: they may be shared.

Every entry is verified when it is read from disk: it stores its own key and a sha256 of its arrays, and is
served only when both match. An entry that does not (truncated, a flipped byte, arrays rewritten by hand, a file
copied in from another key) is reported as a CacheRepairWarning, removed, and computed again, once. This guards
against accidents and copies; a forger who rewrites both the arrays and their checksum is not in its scope.

Pixels (decoded splits, perturbed images: `pixels=True`) live under `<root>/images/` and are kept within
`pixel_budget` bytes: after each write, the least recently used are removed until the folder fits (a read marks
an entry used). Everything else (predictions, zero-shot heads) is small and always kept. An entry removed while
another worker was about to read it is simply computed again.

`track()` records, while its block runs, which entries were served and whether each was read or computed (and
in how many seconds): what harness.durations keeps per case, so that a plan knows a case's data is still cached.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import time
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from filelock import FileLock

from .files import write_atomic

MEMORY_BYTES = 2 << 30
_KEY, _CHECKSUM = "__cache_key__", "__cache_sha256__"


class CacheRepairWarning(UserWarning):
    """A cache entry failed verification and was removed; its value is computed again."""


class CorruptEntry(ValueError):
    """A cache file that cannot be served under the key it was asked for."""


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def cache_key(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(key).encode()).hexdigest()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `arrays`, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


PIXEL_BUDGET = 20 * 10**9  # bytes; the protocol's cache_images_gb


@dataclasses.dataclass
class EntryUse:
    """How one entry served a traced block: read (`hit`, from memory or disk), or computed and written in
    `compute_s` seconds (not counting entries computed inside its computation, nor waiting for the lock)."""

    hit: bool
    compute_s: float = 0.0


@dataclasses.dataclass(eq=False)  # a trace is one block's: compared by identity
class CacheTrace:
    """The entries (by digest) that were served while a `track()` block ran, in the order they were served (an
    entry computed inside another's computation first)."""

    entries: dict[str, EntryUse] = dataclasses.field(default_factory=dict)

    @property
    def cold(self) -> bool:
        """Some entry had to be computed."""
        return any(not use.hit for use in self.entries.values())

    def note(self, digest: str, use: EntryUse) -> None:
        """A computation outweighs a read of the same entry; two computations add up."""
        seen = self.entries.get(digest)
        if seen is None or seen.hit:
            self.entries[digest] = use
        elif not use.hit:
            seen.compute_s += use.compute_s


class ArrayCache:
    def __init__(self, root: Path, memory_bytes: int = MEMORY_BYTES, pixel_budget: int = PIXEL_BUDGET):
        self.root = Path(root)
        self.memory_bytes = memory_bytes
        self.pixel_budget = pixel_budget
        self._memory: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._traces: list[CacheTrace] = []
        self._nesting = threading.local()  # per thread (the prefetch thread computes too): seconds nested in each computation in progress

    @contextlib.contextmanager
    def track(self) -> Iterator[CacheTrace]:
        """A `CacheTrace` of every entry `get_or_compute` serves until the block ends (blocks may nest)."""
        trace = CacheTrace()
        self._traces.append(trace)
        try:
            yield trace
        finally:
            self._traces.remove(trace)

    def _noted(self, digest: str, use: EntryUse) -> None:
        for trace in self._traces:
            trace.note(digest, EntryUse(use.hit, use.compute_s))

    @contextlib.contextmanager
    def _computing(self, digest: str) -> Iterator[None]:
        """Times the computation of one entry, less the computations nested in it, for the open traces."""
        started = time.perf_counter()
        inner_s = self._nesting.__dict__.setdefault("inner_s", [])
        inner_s.append(0.0)
        try:
            yield
        finally:
            inner, spent = inner_s.pop(), time.perf_counter() - started
            if inner_s:
                inner_s[-1] += spent
        self._noted(digest, EntryUse(hit=False, compute_s=spent - inner))

    def entry_path(self, digest: str, pixels: bool = False) -> Path:
        """Where the entry of key digest `digest` (`cache_key`) lives on disk (under images/ for pixels)."""
        return (self.root / "images" if pixels else self.root) / digest[:2] / f"{digest}.npz"

    def holds(self, digest: str) -> bool:
        """The entry of `digest` is on disk (a read would still verify it)."""
        return self.entry_path(digest).is_file() or self.entry_path(digest, pixels=True).is_file()

    def pixel_bytes(self) -> int:
        """Bytes the pixel entries take on disk now."""
        return sum(size for _, size, _ in self._pixel_entries())

    def _pixel_entries(self) -> list[tuple[float, int, Path]]:
        entries = []
        for path in (self.root / "images").glob("*/*.npz"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # evicted by another worker meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        return entries

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used pixel entries, never `keep` (the one just written), until the pixel
        folder fits the budget."""
        entries = sorted(self._pixel_entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.pixel_budget:
                return
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size

    def get_or_compute(self, key: Mapping[str, Any], compute: Callable[[], dict[str, np.ndarray]],
                       remember: bool = True, pixels: bool = False) -> dict[str, np.ndarray]:
        """The arrays stored under `key`, computed by `compute` and stored first when absent or failing
        verification. With `remember=False` the entry is not kept in memory (a chunk of a streamed split, read
        once per case: keeping it would only grow the process); `pixels=True` marks images, kept on disk within
        the pixel budget."""
        served = self.lookup(key, remember, pixels)
        if served is not None:
            return served

        def computed(path: Path, digest: str) -> dict[str, np.ndarray]:
            with self._computing(digest):
                arrays = compute()
                self._write(path, key, arrays)
            return arrays

        return self._stored_once(key, remember, pixels, computed)

    def lookup(self, key: Mapping[str, Any], remember: bool = True,
               pixels: bool = False) -> dict[str, np.ndarray] | None:
        """The arrays stored under `key` (verified, read-only), or None; no lock is taken. With `store`, for a value
        produced in steps and used as it comes (a split decoded piece by piece), which no lock can be held
        across."""
        digest = cache_key(key)
        if digest in self._memory:
            self._memory.move_to_end(digest)
            self._noted(digest, EntryUse(hit=True))
            return self._memory[digest]
        path = self.entry_path(digest, pixels)
        served = self._verified(path, key) if path.is_file() else None
        if served is None:
            return None
        if pixels:
            _touch(path)
        return self._remember(digest, served, remember)

    def store(self, key: Mapping[str, Any], arrays: dict[str, np.ndarray], compute_s: float, remember: bool = True,
              pixels: bool = False) -> dict[str, np.ndarray]:
        """Store `arrays`, computed in `compute_s` seconds, under `key` and return them read-only; when another
        worker stored a verified entry meanwhile (both computed it), that one is kept and served."""
        def written(path: Path, digest: str) -> dict[str, np.ndarray]:
            self._write(path, key, arrays)
            self._noted(digest, EntryUse(hit=False, compute_s=compute_s))
            return arrays

        return self._stored_once(key, remember, pixels, written)

    def _stored_once(self, key: Mapping[str, Any], remember: bool, pixels: bool,
                     write: Callable[[Path, str], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Under the entry's lock: the entry another worker stored meanwhile, if it verifies; else what
        `write(path, digest)` writes there. The pixel folder is then brought within its budget."""
        digest = cache_key(key)
        path = self.entry_path(digest, pixels)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                served = self._verified(path, key)
                if served is not None:
                    return self._remember(digest, served, remember)
            arrays = write(path, digest)
        if pixels:
            self._fit_budget(path)
        return self._remember(digest, arrays, remember)

    @staticmethod
    def _write(path: Path, key: Mapping[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if _KEY in arrays or _CHECKSUM in arrays:
            raise ValueError(f"cache values may not use the reserved names {_KEY}, {_CHECKSUM}")
        stored = {**arrays, _KEY: np.frombuffer(_canonical(key).encode(), np.uint8),
                  _CHECKSUM: np.frombuffer(arrays_sha256(arrays).encode(), np.uint8)}
        write_atomic(path, lambda handle: np.savez(handle, **stored), durable=False)

    def _fit_budget(self, written: Path) -> None:
        with FileLock(str(self.root / "images" / ".evict.lock")):
            self._evict(keep=written)

    def _verified(self, path: Path, key: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The entry at `path` if it verifies under `key`; otherwise it is reported, removed and None returned
        (None, silently, when it was evicted meanwhile)."""
        try:
            return self._read(path, key)
        except FileNotFoundError:
            return None
        except (CorruptEntry, OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
            warnings.warn(CacheRepairWarning(f"cache entry {path} failed verification ({error}); removed, the value "
                                             f"is computed again"), stacklevel=3)
            path.unlink(missing_ok=True)
            return None

    def _remember(self, digest: str, arrays: dict[str, np.ndarray], remember: bool) -> dict[str, np.ndarray]:
        self._noted(digest, EntryUse(hit=True))  # after a computation, that one is what the traces keep
        for array in arrays.values():
            array.flags.writeable = False
        size = sum(array.nbytes for array in arrays.values())
        if remember and size <= self.memory_bytes:
            self._memory[digest] = arrays
            while sum(a.nbytes for entry in self._memory.values() for a in entry.values()) > self.memory_bytes:
                self._memory.popitem(last=False)
        return arrays

    @staticmethod
    def _read(path: Path, key: Mapping[str, Any]) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        stored_key, stored_sum = arrays.pop(_KEY, None), arrays.pop(_CHECKSUM, None)
        if stored_key is None or stored_sum is None:
            raise CorruptEntry("it holds no key or checksum (written by an older harness, or by hand)")
        if stored_key.tobytes().decode(errors="replace") != _canonical(key):
            raise CorruptEntry("it was written under another key")
        if stored_sum.tobytes().decode(errors="replace") != arrays_sha256(arrays):
            raise CorruptEntry("its arrays do not match their checksum")
        return arrays


def _touch(path: Path) -> None:
    """Mark a pixel entry used now, for least-recently-used eviction (gone already: nothing to mark)."""
    try:
        path.touch()
    except FileNotFoundError:
        pass
