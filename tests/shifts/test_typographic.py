"""Typographic attacks: a misleading class name written on each image, drawn from (seed, index) alone."""
import numpy as np
import pytest

from harness.shifts.typographic import TypographicSpec, overlay, written_classes


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(6, 64, 64, 3), dtype=np.uint8)


def test_typographic_overlay_writes_another_class(images):
    labels = np.arange(6) % 3
    spec = TypographicSpec.parse("2x12px-white-random")
    out, written = overlay(images, labels, ("cat", "dog", "car"), spec, seed=0)
    assert (written != labels).all() and np.array_equal(written, written_classes(labels, 3, 0))
    assert not np.array_equal(out, images)
    assert np.array_equal(out, overlay(images, labels, ("cat", "dog", "car"), spec, seed=0)[0])
    with pytest.raises(ValueError, match="not of the form"):
        TypographicSpec.parse("big-red")
