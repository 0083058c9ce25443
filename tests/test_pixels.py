import base64

import numpy as np
import pytest

from harness.pixels import DIGEST_BYTES, MAX_DIGESTS, drift_note, image_digests, pixel_drift


def test_digests_locate_the_images_that_differ():
    images = np.zeros((30, 4, 4, 3), np.uint8)
    changed = images.copy()
    changed[[0, 29], 1, 1] = 7
    drift = pixel_drift(image_digests(changed), image_digests(images))
    assert (drift.blocks_differing, drift.blocks, drift.images_differing) == (2, 30, 2)
    assert pixel_drift(image_digests(images), image_digests(images.copy())).blocks_differing == 0


def test_large_cases_digest_blocks_and_bound_the_images_that_differ():
    images = np.zeros((3 * MAX_DIGESTS + 5, 2, 2, 3), np.uint8)
    fingerprint = image_digests(images)
    assert fingerprint["block"] == 4 and len(base64.b64decode(fingerprint["digests"])) == 770 * DIGEST_BYTES
    changed = images.copy()
    changed[-1] = 1
    drift = pixel_drift(image_digests(changed), fingerprint)
    assert drift.blocks_differing == 1 and drift.images_differing == 4
    assert "1 of 770 blocks of 4 images" in drift.describe()


def test_unlike_layouts_are_not_compared():
    with pytest.raises(ValueError, match="cannot be compared"):
        pixel_drift(image_digests(np.zeros((3, 2, 2, 3), np.uint8)), image_digests(np.zeros((4, 2, 2, 3), np.uint8)))


def test_the_drift_note_bounds_the_images():
    drift = pixel_drift(image_digests(np.ones((6, 2, 2, 3), np.uint8)), image_digests(np.zeros((6, 2, 2, 3), np.uint8)))
    assert drift_note(drift.as_dict()).startswith("pixel drift under the same recipe: at most 6 of 6 images")
