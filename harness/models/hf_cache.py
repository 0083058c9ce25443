"""Lookups in the local Hugging Face hub cache, read as huggingface_hub lays it out; nothing is downloaded.

A repo `org/name` lives in `<cache>/models--org--name/snapshots/<revision>/<file>`, the cache being
`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, read from the environment at call time.
"""
from __future__ import annotations

import os
from pathlib import Path


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hf_repo_folder(repo: str) -> Path:
    """Where the cache keeps `repo` (`org/name`), whether or not it is there."""
    return hf_cache_dir() / f"models--{repo.replace('/', '--')}"


def hf_cached(repo: str, filenames: tuple[str, ...]) -> tuple[Path | None, list[str]]:
    """The first of `filenames` cached for `repo` (in any snapshot, the last by name when several hold it), and
    the glob patterns searched when none is (empty when found)."""
    snapshots = hf_repo_folder(repo) / "snapshots"
    for filename in filenames:
        found = sorted(snapshots.glob(f"*/{filename}"))
        if found:
            return found[-1], []
    return None, [str(snapshots / "*" / name) for name in filenames]
