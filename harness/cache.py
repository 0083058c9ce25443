"""A content-addressed disk cache of numpy arrays, safe when several xdist workers ask for the same entry.

The key is a JSON-able dict that must name everything the value depends on (code version, parameters, seed);
its sha256 names the file. The first worker computes and writes atomically; the others wait on the lock and read.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from filelock import FileLock


def cache_key(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class ArrayCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def get_or_compute(self, key: Mapping[str, Any], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        digest = cache_key(key)
        path = self.root / digest[:2] / f"{digest}.npz"
        if path.is_file():
            return self._read(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.is_file():
                return self._read(path)
            arrays = compute()
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
            return arrays

    @staticmethod
    def _read(path: Path) -> dict[str, np.ndarray]:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
