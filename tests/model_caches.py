"""Writers of local weight caches in the exact layouts the libraries read, for tests that load through them."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from harness.files import sha256_file


def hf_cache_file(cache: Path, repo: str, filename: str, source: Path) -> Path:
    """Move `source` into the Hugging Face hub cache `cache` as huggingface_hub stores a download of `filename`
    from `repo`: the bytes as `blobs/<sha256>`, `snapshots/<commit>/<filename>` a relative symlink to the blob,
    `refs/main` naming the commit. Returns the snapshot path."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / sha256_file(source)
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, blob)
    commit = hashlib.sha1(repo.encode()).hexdigest()
    snapshot = folder / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot
