"""The pixels the project computes itself are exact: their hashes equal the committed ones on any machine."""
import json

import numpy as np
import pytest

from harness.shifts.perturbations import _blur_weights, greyscale
from portable_pixels import GOLDEN, portable_digests


@pytest.fixture(scope="module")
def digests():
    return portable_digests()


def test_project_pixels_match_the_committed_hashes(digests):
    golden = json.loads(GOLDEN.read_text())
    differ = sorted(key for key in golden if digests.get(key) != golden[key])
    assert set(digests) == set(golden) and not differ, (
        f"pixels the project computes changed: {differ}. They are promised to be the same on every CPU, so "
        f"this is a code change: review it, then `python tests/portable_pixels.py --regenerate`")


def test_greyscale_is_integer_luma_rounded_half_up():
    pixels = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 1, 2], [10, 20, 30]]]], np.uint8)
    expected = [round(0.299 * 255), round(0.587 * 255), round(0.114 * 255), 1, 18]  # 18.15 -> 18; 1.114 -> 1
    assert greyscale(pixels)[0, 0, :, 0].tolist() == expected


def test_blur_taps_are_integers_summing_to_one_in_fixed_point():
    taps = _blur_weights(1.2, 3)
    assert taps.dtype == np.int64 and taps.sum() == 1 << 16 and list(taps) == list(taps[::-1])
    assert taps[3] == taps.max()
