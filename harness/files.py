"""Files written all or none, and files hashed: the one place the harness does either.

A reader of a path written here sees the old file or the new one, never a partial one: the bytes go to a
temporary file in the same folder, are flushed to disk, and replace the target in one rename. The file keeps the
target's permissions (a new one gets 0666 less the umask, not mkstemp's 0600).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping


def _mode_for(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_staged(path: Path, write: Callable[[BinaryIO], None], target: Path, durable: bool = True) -> None:
    """Create or overwrite `path` with what `write(handle)` writes (flushed to disk when `durable`), with the
    permissions `target` has (or a new file would get), NOT atomically: for a file renamed onto `target` later."""
    path, mode = Path(path), _mode_for(Path(target))
    with open(path, "wb") as handle:
        write(handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.chmod(path, mode)


def write_atomic(path: Path, write: Callable[[BinaryIO], None], durable: bool = True) -> Path:
    """Replace `path` (its folder created if needed) by what `write(handle)` writes, all or none; returns it.
    `durable=False` skips the fsync, for files whose readers verify them anyway (cache entries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_staged(Path(tmp), write, path, durable)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_bytes(document: Mapping[str, Any]) -> bytes:
    """The harness's JSON file format: indent 1, sorted keys, a final newline."""
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> Path:
    data = json_bytes(document)
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes, read in `chunk`-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
