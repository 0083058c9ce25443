"""ImageNet-C corruptions (imagecorruptions): deterministic per (seed, corruption, severity, image), refused
when unknown, cached on disk under their pixel recipe."""
import numpy as np
import pytest

from harness.cache import ArrayCache
from harness.shifts.corruptions import ALL_CORRUPTIONS, corrupt_images, corrupted, recipe


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "glass_blur", "snow", "jpeg_compression"])
def test_corruption_is_reproducible_per_seed_and_index(images, name):
    first = corrupt_images(images, name, 3, seed=0)
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert np.array_equal(first, corrupt_images(images, name, 3, seed=0))
    # image i depends on (seed, i) alone, so capping the sample count keeps a prefix
    assert np.array_equal(first[:2], corrupt_images(images[:2], name, 3, seed=0))
    assert not np.array_equal(first, images)


def test_different_seed_changes_random_corruptions(images):
    assert not np.array_equal(corrupt_images(images, "gaussian_noise", 3, 0), corrupt_images(images, "gaussian_noise", 3, 1))


def test_unknown_corruption_and_severity(images):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt_images(images, "rain", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        corrupt_images(images, "fog", 6, 0)
    assert len(ALL_CORRUPTIONS) == 19
    from imagecorruptions import get_corruption_names

    assert ALL_CORRUPTIONS == tuple(get_corruption_names("all"))  # same names in the library's order


def test_corrupted_is_cached_by_content(tmp_path, images):
    cache = ArrayCache(tmp_path)
    out = corrupted(images, recipe("sha-a", "fog", 2, 0), cache)
    assert np.array_equal(out, corrupt_images(images, "fog", 2, 0))
    assert len(list(tmp_path.rglob("*.npz"))) == 1


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "glass_blur"])
def test_corruptions_on_several_processes_give_the_bytes_of_one(name):
    """Per-image seeding makes the split across processes invisible; impulse_noise and glass_blur take an
    explicit seed, gaussian_noise the global one."""
    images = np.random.default_rng(5).integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    one = corrupt_images(images, name, 2, seed=1, offset=40)
    assert np.array_equal(corrupt_images(images, name, 2, seed=1, offset=40, workers=3), one)
    assert np.array_equal(corrupt_images(images[3:], name, 2, seed=1, offset=43), one[3:])  # a later chunk


def test_auto_corruption_workers_share_the_cores_among_xdist_workers(monkeypatch):
    import os

    from harness.shifts.corruptions import corruption_workers

    assert corruption_workers(3) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    assert corruption_workers(0) == 4
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "32")
    assert corruption_workers(0) == 1
