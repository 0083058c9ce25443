"""Everything outside the project that can change a number: library versions and the CPU, for provenance and
cache keys.

`PIXEL_LIBRARIES` are the libraries that produce the pixels of library corruptions (imagecorruptions and what
it calls: NumPy, SciPy, scikit-image, OpenCV, numba/llvmlite, Pillow); their versions are part of a corruption's
recipe (harness.shifts.corruptions). `cpu()` describes the processor and the kernels the numerical libraries
picked on it at run time (NumPy's SIMD dispatch, the BLAS core, OpenCV's features, torch's CPU capability, the
dispatch and thread variables set): the facts that explain a byte drift between two machines.
"""
from __future__ import annotations

import contextlib
import os
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

_DISTRIBUTIONS = {"torch": ("torch",), "torchvision": ("torchvision",), "open_clip": ("open_clip_torch",),
                  "torchattacks": ("torchattacks",), "imagecorruptions": ("imagecorruptions-imaug",),
                  "numpy": ("numpy",), "scipy": ("scipy",), "scikit-image": ("scikit-image",),
                  "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                             "opencv-contrib-python-headless"),
                  "numba": ("numba",), "llvmlite": ("llvmlite",), "pillow": ("pillow",),
                  "threadpoolctl": ("threadpoolctl",), "pytest": ("pytest",), "pytest_xdist": ("pytest-xdist",)}

PIXEL_LIBRARIES = ("imagecorruptions", "numpy", "scipy", "scikit-image", "opencv", "numba", "llvmlite", "pillow")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_DISPATCH_VARIABLES = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",
                       "OPENCV_CPU_DISABLE", "OPENCV_IPP", "ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME")


@lru_cache(maxsize=None)
def package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def library_version(name: str) -> str | None:
    """The installed version of library `name` (a key of `versions()`), whichever of its distributions holds it."""
    return next((v for v in map(package_version, _DISTRIBUTIONS[name]) if v is not None), None)


def versions() -> dict[str, str | None]:
    found = {name: library_version(name) for name in _DISTRIBUTIONS}
    return {"python": platform.python_version(), "harness": __version__, **found}


def pixel_library_versions() -> dict[str, str | None]:
    return {name: library_version(name) for name in PIXEL_LIBRARIES}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _numpy_features() -> dict[str, list[str]]:
    from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__

    return {"baseline": list(__cpu_baseline__), "dispatch": list(__cpu_dispatch__),
            "cpu": sorted(name for name, present in __cpu_features__.items() if present)}


def _blas() -> list[dict[str, Any]]:
    """The BLAS and OpenMP runtimes of NumPy, SciPy and torch, loaded first so every process lists the same."""
    import importlib

    from threadpoolctl import threadpool_info

    for module in ("numpy", "scipy.linalg", "torch"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    pools = {tuple(pool.get(key) for key in ("internal_api", "version", "architecture")) for pool in threadpool_info()}
    return [dict(zip(("internal_api", "version", "architecture"), pool)) for pool in sorted(pools, key=str)]


def _opencv() -> dict[str, Any] | None:
    try:
        import cv2
    except ImportError:
        return None
    return {"version": cv2.__version__, "features": cv2.getCPUFeaturesLine(),
            "ipp": cv2.ipp.getIppVersion() if cv2.ipp.useIPP() else "off"}


def _torch() -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability()}


@lru_cache(maxsize=1)
def cpu() -> dict[str, Any]:
    """The processor and the code paths the numerical libraries chose on it (JSON-able). Thread counts are
    the run's choice, not the machine's: only the variables that set them are recorded, so every process of one
    run (controller or worker, -n 0 or -n 2) describes the machine alike."""
    return {"machine": platform.machine(), "model": _cpu_model(), "cores": os.cpu_count(),
            "numpy": _numpy_features(), "blas": _blas(), "opencv": _opencv(), "torch": _torch(),
            "environment": {name: os.environ[name] for name in _THREAD_VARIABLES + _DISPATCH_VARIABLES
                            if name in os.environ}}
