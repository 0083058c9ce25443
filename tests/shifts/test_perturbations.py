"""Greyscale, stylization and ImageNet-P-style sequences: seeded, prefix-stable, and scored by flips."""
import numpy as np
import pytest

from harness.shifts.perturbations import FRAMES, SEQUENCES, flips, greyscale, sequences, stylized


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(6, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", SEQUENCES)
def test_sequences_are_seeded_prefix_stable_and_move(images, kind):
    frames = sequences(images, kind, seed=0)
    assert frames.shape == (6, FRAMES, 64, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, sequences(images, kind, seed=0))
    assert np.array_equal(frames[:2], sequences(images[:2], kind, seed=0))
    assert not np.array_equal(frames[:, 0], frames[:, -1])


def test_flip_counting():
    predictions = np.array([[1, 1, 2, 2, 1], [3, 3, 3, 3, 3]])
    assert flips(predictions, "translate").tolist() == [2, 0]
    assert flips(predictions, "gaussian_noise").tolist() == [2, 0]  # against the first frame


def test_greyscale_and_stylized(images):
    grey = greyscale(images)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    white = np.full((1, 4, 4, 3), 255, np.uint8)
    assert (greyscale(white) == 255).all()
    styled = stylized(images, seed=0)
    assert styled.shape == images.shape and np.array_equal(styled, stylized(images, seed=0))
    assert not np.array_equal(styled, stylized(images, seed=1))
