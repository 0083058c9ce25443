"""Another machine, simulated: the CPU-dispatch matrix.

Each setting runs fresh processes under environment variables that make the numerical libraries take the code
paths of another CPU: OpenBLAS core types, NumPy's and OpenCV's CPU-feature switches, torch's CPU capability,
numba's target and thread counts. Under every setting that this CPU can run,
- the pixels the project computes are byte-identical to the committed hashes (tests/portable_pixels.py);
- the library corruptions stay within the golden tolerance (tests/shifts/test_corruption_golden.py);
and under the settings marked `gate` (every library moved down at once, as on an old CPU; BLAS moved up; NumPy
as on a typical AVX2 machine), a slice of the suite gates green against the committed baselines, with a cold
cache of its own (a shared cache would hide the drift). The drift each slice saw is printed (`pytest -s`).
A setting that moves torch gates GATE_SLICE: every source of pixels and the numerics of a forward pass and of
an attack. One that moves only the pixel libraries (torch on x86-64 links MKL and its own OpenMP, not OpenBLAS)
gates PIXEL_SLICE, the cases whose pixels those libraries make: its other cases would score the project's own
pixels, byte-identical under every setting by the first test, with the same torch numerics as the suite's run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from portable_pixels import GOLDEN
from suite_helpers import ROOT, read_json, run_suite


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    env: dict[str, str]
    needs: tuple[str, ...] = ()  # NumPy CPU features the setting's forced code paths require
    gate: bool = False

    @property
    def moves_torch(self) -> bool:
        """Whether a variable of torch's own kernels or thread pools (ATen, OpenMP, MKL, oneDNN) is set."""
        return any(name.startswith(("ATEN_", "OMP_", "KMP_", "MKL_", "ONEDNN_", "DNNL_")) for name in self.env)


_NUMPY_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"
_NUMPY_SSE42 = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"
_OPENCV_SSE3 = "AVX512-SKX,AVX2,FP16,AVX,SSE4.2,SSE4.1"
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

SETTINGS = (
    Setting("blas-skylakex", {"OPENBLAS_CORETYPE": "SkylakeX"}, ("AVX512F",), gate=True),
    Setting("blas-haswell", {"OPENBLAS_CORETYPE": "Haswell"}, ("AVX2", "FMA3")),
    Setting("blas-zen", {"OPENBLAS_CORETYPE": "Zen"}, ("AVX2", "FMA3")),
    Setting("blas-sandybridge", {"OPENBLAS_CORETYPE": "Sandybridge"}, ("AVX",)),
    Setting("numpy-avx2", {"NPY_DISABLE_CPU_FEATURES": _NUMPY_AVX2}, ("X86_V4",), gate=True),
    Setting("numpy-sse42", {"NPY_DISABLE_CPU_FEATURES": _NUMPY_SSE42}, ("X86_V3",)),
    Setting("opencv-avx2", {"OPENCV_CPU_DISABLE": "AVX512-SKX"}, ("AVX512_SKX",)),
    Setting("opencv-sse3", {"OPENCV_CPU_DISABLE": _OPENCV_SSE3}, ("AVX",)),
    Setting("torch-default", {"ATEN_CPU_CAPABILITY": "default"}),
    Setting("one-thread", _ONE_THREAD),
    Setting("old-cpu", {"OPENBLAS_CORETYPE": "Sandybridge", "NPY_DISABLE_CPU_FEATURES": _NUMPY_SSE42,
                        "OPENCV_CPU_DISABLE": _OPENCV_SSE3, "ATEN_CPU_CAPABILITY": "default",
                        "NUMBA_CPU_NAME": "generic", **_ONE_THREAD}, ("AVX", "X86_V3"), gate=True),
)

# What the pixel libraries make (greyscale, stylized, sequences, typographic, the corruptions seen to drift across
# CPUs), then also the project's rendered clean data and frames and the numerics of a forward pass and of an
# attack; for both embedded models. Sequence names end in `]`: `p-zoom` alone matches `synth-clip-zoom_blur-*`.
PIXEL_SLICE = ("greyscale or stylized or p-zoom] or p-rotate] or p-gaussian_blur] or motion_blur-4 or "
               "gaussian_blur-2 or frost-3 or defocus_blur-4 or snow-4 or typographic-1x14px")
GATE_SLICE = f"{PIXEL_SLICE} or clean] or vid-pm4 or pgd-linf-1/255"
SLICE_CASES = {PIXEL_SLICE: 22, GATE_SLICE: 28}


def _cpu_features() -> set[str]:
    from numpy._core._multiarray_umath import __cpu_features__

    return {name for name, present in __cpu_features__.items() if present}


RUNNABLE = [s for s in SETTINGS if set(s.needs) <= _cpu_features()]


def _env(setting: Setting) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in setting.env}
    return inherited | setting.env


def test_the_matrix_covers_each_library_on_an_x86_64_machine():
    """On x86-64 with AVX2 (CI's machine and most runners), at least one setting moves each library."""
    if not {"AVX2", "FMA3"} <= _cpu_features():
        pytest.skip(f"this CPU has no AVX2/FMA3, so it runs only {[s.name for s in RUNNABLE]}")
    moved = {variable for setting in RUNNABLE for variable in setting.env}
    assert {"OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "OPENCV_CPU_DISABLE", "ATEN_CPU_CAPABILITY",
            "OMP_NUM_THREADS"} <= moved


@pytest.mark.parametrize("setting", RUNNABLE, ids=lambda s: s.name)
def test_project_pixels_are_identical_and_corruptions_within_tolerance(setting):
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "portable_pixels.py")], cwd=ROOT, env=_env(setting),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    golden = json.loads(GOLDEN.read_text())
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: v for k, v in found.items() if golden.get(k) != v} == {}, f"{setting.name}: project pixels moved"
    golden_test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  str(ROOT / "tests" / "shifts" / "test_corruption_golden.py")], cwd=ROOT,
                                 env=_env(setting), capture_output=True, text=True, timeout=300)
    assert golden_test.returncode == 0, f"{setting.name}:\n{golden_test.stdout[-3000:]}"


@pytest.mark.parametrize("setting", [s for s in RUNNABLE if s.gate], ids=lambda s: s.name)
def test_committed_baselines_gate_green(setting, tmp_path):
    selection = GATE_SLICE if setting.moves_torch else PIXEL_SLICE
    done = run_suite("-k", selection, f"--cache-dir={tmp_path / 'cache'}", f"--report-dir={tmp_path}",
                     "-p", "no:randomly", timeout=900, extra_env=setting.env)
    report = read_json(tmp_path / "latest.json")
    statuses = {case["id"]: case["status"] for case in report["cases"]}
    assert done.returncode == 0 and set(statuses.values()) == {"passed"}, (
        f"{setting.name}: {statuses}\n{done.stdout[-3000:]}")
    assert len(statuses) == SLICE_CASES[selection] and report["run"]["complete"]
    assert report["run"]["cpu"]["environment"].items() >= setting.env.items()
    drifted = {case["id"]: case["pixel_drift"]["images_differing"] for case in report["cases"]
               if case.get("pixel_drift")}
    print(f"{setting.name}: {len(statuses)} cases passed; pixel drift (images differing): {drifted or 'none'}")
