"""Golden hashes of every (corruption, severity) on a fixed image: a dependency upgrade that changes pixels fails.

Regenerate (after reviewing why pixels changed) with `python tests/test_corruption_golden.py --regenerate`.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.shifts.corruptions import ALL_CORRUPTIONS, corrupt_images

GOLDEN = Path(__file__).with_name("golden") / "corruptions.json"
SEED = 0


def fixture_images() -> np.ndarray:
    """Two 64x64 images: smooth colour gradients with a bright square, and their mirror with noise."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    first = np.stack([x, y, 1 - x * y], axis=-1)
    first[20:44, 20:44] = [0.9, 0.8, 0.1]
    second = np.clip(first[:, ::-1] + np.random.default_rng(0).normal(0, 0.05, first.shape), 0, 1)
    return (np.stack([first, second]) * 255).round().astype(np.uint8)


def digest(name: str, severity: int) -> str:
    return hashlib.sha256(corrupt_images(fixture_images(), name, severity, SEED).tobytes()).hexdigest()


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_corruption_pixels_match_golden_hashes(name):
    golden = json.loads(GOLDEN.read_text())["hashes"][name]
    assert {str(s): digest(name, s) for s in range(1, 6)} == golden, (
        f"{name}: pixels changed against {GOLDEN}; if a dependency upgrade is the cause, baselines of synthetic "
        f"cases must be re-recorded too")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    from harness.versions import versions

    GOLDEN.write_text(json.dumps({
        "seed": SEED, "versions": {k: v for k, v in versions().items() if k in ("imagecorruptions", "numpy")},
        "hashes": {name: {str(s): digest(name, s) for s in range(1, 6)} for name in ALL_CORRUPTIONS}},
        indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
