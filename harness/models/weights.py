"""Checkpoints on disk, shared by the model families: the suffixes a local weights file may have, loading a state
dict without executing pickled code, and the errors for weights that are unsafe or not in the local cache. (A
file's sha256, for provenance, is harness.files.sha256_file.)"""
from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Iterator

import torch

LOCAL_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class UnsafeCheckpointError(ValueError):
    """A checkpoint is a pickle that would execute code when loaded; it was refused, not loaded."""


class WeightsNotCachedError(FileNotFoundError):
    """Pretrained weights are not in the local cache; the message names the path and how to fetch them."""


@contextlib.contextmanager
def refusing_unsafe_pickles(path: Path) -> Iterator[None]:
    """Turn torch.load(weights_only=True)'s rejection of a code-executing pickle into UnsafeCheckpointError."""
    try:
        yield
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refused to load {path}: it is a pickle that needs arbitrary code to unpickle (torch.load with "
            f"weights_only=True rejected it: {str(error).splitlines()[0]}); convert it to .safetensors on a "
            f"machine where you trust it") from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a .pth/.pt/.bin state dict loaded with weights_only=True."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    with refusing_unsafe_pickles(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state
