"""Versions of everything that can change a number, for provenance and cache keys."""
from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata

from . import __version__

_DISTRIBUTIONS = {"torch": "torch", "torchvision": "torchvision", "open_clip": "open_clip_torch",
                  "torchattacks": "torchattacks", "imagecorruptions": "imagecorruptions-imaug", "numpy": "numpy",
                  "pillow": "pillow", "pytest": "pytest", "pytest_xdist": "pytest-xdist"}


@lru_cache(maxsize=None)
def package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    found = {name: package_version(dist) for name, dist in _DISTRIBUTIONS.items()}
    return {"python": platform.python_version(), "harness": __version__, **found}
