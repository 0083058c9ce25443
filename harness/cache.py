"""A content-addressed disk cache of numpy arrays, safe when several xdist workers ask for the same entry.

The key is a JSON-able dict that must name everything the value depends on (code version, parameters, seed);
its sha256 names the file. The first worker computes and writes atomically; the others wait on the lock and read.
Within a process, entries are also kept in memory (least recently used first out, at most MEMORY_BYTES), so the
cases of one split share one read. Arrays come back read-only: they may be shared.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from filelock import FileLock


def cache_key(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


MEMORY_BYTES = 2 << 30


class ArrayCache:
    def __init__(self, root: Path, memory_bytes: int = MEMORY_BYTES):
        self.root = Path(root)
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()

    def get_or_compute(self, key: Mapping[str, Any], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        digest = cache_key(key)
        if digest in self._memory:
            self._memory.move_to_end(digest)
            return self._memory[digest]
        path = self.root / digest[:2] / f"{digest}.npz"
        if path.is_file():
            return self._remember(digest, self._read(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                return self._remember(digest, self._read(path))
            arrays = compute()
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
            return self._remember(digest, arrays)

    def _remember(self, digest: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for array in arrays.values():
            array.flags.writeable = False
        size = sum(array.nbytes for array in arrays.values())
        if size <= self.memory_bytes:
            self._memory[digest] = arrays
            while sum(a.nbytes for entry in self._memory.values() for a in entry.values()) > self.memory_bytes:
                self._memory.popitem(last=False)
        return arrays

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
