"""The content-addressed cache: computed once, read-only and bounded in memory, verified on every read."""
from pathlib import Path

import numpy as np
import pytest

from harness.cache import ArrayCache, cache_key


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)


def test_cache_computes_once_and_returns_identical_arrays(tmp_path, images):
    cache = ArrayCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"images": images}

    key = {"kind": "test", "n": 3}
    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert calls == [1]
    assert np.array_equal(first["images"], second["images"])
    assert cache.get_or_compute({"kind": "test", "n": 4}, compute) and calls == [1, 1]


def test_cache_keeps_entries_in_memory_read_only_and_bounded(tmp_path, images):
    cache = ArrayCache(tmp_path, memory_bytes=images.nbytes)
    first = cache.get_or_compute({"kind": "test", "n": 1}, lambda: {"images": images.copy()})
    assert cache.get_or_compute({"kind": "test", "n": 1}, lambda: {}) is first  # no disk read, no compute
    with pytest.raises(ValueError, match="read-only"):
        first["images"][0, 0, 0, 0] = 1
    cache.get_or_compute({"kind": "test", "n": 2}, lambda: {"images": images.copy()})  # evicts n=1 from memory
    again = cache.get_or_compute({"kind": "test", "n": 1}, lambda: {})
    assert again is not first and np.array_equal(again["images"], images)


def test_content_hash_is_remembered_only_for_read_only_arrays(images):
    from harness.data.base import content_sha256

    writable = images.copy()
    before = content_sha256(writable)
    writable[0, 0, 0, 0] ^= 1
    assert content_sha256(writable) != before
    frozen = images.copy()
    frozen.flags.writeable = False
    assert content_sha256(frozen) == content_sha256(images.copy())


def test_remembered_content_hashes_hold_no_array_alive(images):
    import gc
    import weakref

    from harness.data.base import content_sha256

    frozen = images.copy()
    frozen.flags.writeable = False
    expected = content_sha256(frozen)
    alive = weakref.ref(frozen)
    del frozen
    gc.collect()
    assert alive() is None
    again = images.copy()
    again.flags.writeable = False
    assert content_sha256(again) == expected


def _entry_path(cache: ArrayCache, key) -> Path:
    from harness.cache import cache_key

    digest = cache_key(key)
    return cache.root / digest[:2] / f"{digest}.npz"


def _counting(values):
    calls = []

    def compute():
        calls.append(1)
        return {"predictions": values.copy()}
    return compute, calls


@pytest.mark.parametrize("damage", ["truncate", "flip-byte", "rewritten-arrays", "swapped-key", "no-checksum"])
def test_a_damaged_entry_is_reported_removed_and_recomputed_once(tmp_path, damage):
    from harness.cache import CacheRepairWarning

    good, bad = np.arange(100), np.arange(100)[::-1].copy()
    key, other_key = {"kind": "predictions", "model": "good"}, {"kind": "predictions", "model": "bad"}
    compute, calls = _counting(good)
    ArrayCache(tmp_path).get_or_compute(key, compute)
    path = _entry_path(ArrayCache(tmp_path), key)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "flip-byte":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif damage == "rewritten-arrays":  # 60 predictions altered, the stored key and checksum kept
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        arrays["predictions"][:60] = 7
        np.savez(path, **arrays)
    elif damage == "swapped-key":  # the bad model's entry copied over the good model's
        ArrayCache(tmp_path).get_or_compute(other_key, lambda: {"predictions": bad})
        path.write_bytes(_entry_path(ArrayCache(tmp_path), other_key).read_bytes())
    else:
        np.savez(path, predictions=bad)
    with pytest.warns(CacheRepairWarning, match="failed verification"):
        served = ArrayCache(tmp_path).get_or_compute(key, compute)
    assert np.array_equal(served["predictions"], good) and calls == [1, 1]
    again = ArrayCache(tmp_path).get_or_compute(key, compute)  # repaired on disk: no warning, no compute
    assert np.array_equal(again["predictions"], good) and calls == [1, 1]


def test_pixels_are_kept_within_their_budget_least_recently_used_first_out(tmp_path):
    import os

    cache = ArrayCache(tmp_path, pixel_budget=27_000)
    image = lambda i: {"images": np.full(8_000, i, np.uint8)}  # noqa: E731 - about 8.5 kB on disk each
    for i in range(3):
        cache.get_or_compute({"kind": "pixels", "i": i}, lambda i=i: image(i), pixels=True)
    paths = sorted((tmp_path / "images").glob("*/*.npz"), key=lambda p: p.stat().st_mtime)
    for age, path in enumerate(paths):  # entry 0 oldest, then 1, then 2
        os.utime(path, (1_000 + age, 1_000 + age))
    oldest_key = {"kind": "pixels", "i": 0}
    served, calls = ArrayCache(tmp_path, pixel_budget=27_000).get_or_compute(oldest_key, lambda: image(9),
                                                                            pixels=True), []
    assert served["images"][0] == 0  # a read: nothing computed, and entry 0 is now the most recently used
    cache.get_or_compute({"kind": "pixels", "i": 3}, lambda: image(3), pixels=True)
    assert cache.pixel_bytes() <= 27_000
    kept = {int(np.load(path)["images"][0]) for path in (tmp_path / "images").glob("*/*.npz")}
    assert kept == {0, 2, 3}  # entry 1, the least recently used, went
    predictions = {"kind": "predictions"}
    cache.get_or_compute(predictions, lambda: {"predictions": np.zeros(100_000)})  # not pixels: never evicted
    cache.get_or_compute({"kind": "pixels", "i": 4}, lambda: image(4), pixels=True)
    assert ArrayCache(tmp_path).holds(cache_key(predictions)) and cache.pixel_bytes() <= 27_000
    recomputed = ArrayCache(tmp_path, pixel_budget=27_000).get_or_compute(
        {"kind": "pixels", "i": 1}, lambda: calls.append(1) or image(1), pixels=True)
    assert recomputed["images"][0] == 1 and calls == [1]  # an evicted entry is computed again, silently


def test_a_pixel_entry_larger_than_the_budget_is_still_written_and_served(tmp_path):
    cache = ArrayCache(tmp_path, pixel_budget=10)
    cache.get_or_compute({"kind": "pixels"}, lambda: {"images": np.zeros(1_000, np.uint8)}, pixels=True)
    assert cache.pixel_bytes() > 10 and ArrayCache(tmp_path).holds(cache_key({"kind": "pixels"}))


def test_a_value_produced_in_steps_is_looked_up_then_stored_and_traced_with_its_compute_time(tmp_path):
    cache, key = ArrayCache(tmp_path), {"kind": "test", "steps": 1}
    with cache.track() as trace:
        assert cache.lookup(key, pixels=True) is None
        stored = cache.store(key, {"x": np.arange(4)}, 1.5, pixels=True)
    assert not stored["x"].flags.writeable and cache.entry_path(cache_key(key), pixels=True).is_file()
    assert trace.entries[cache_key(key)].hit is False and trace.entries[cache_key(key)].compute_s == 1.5
    assert np.array_equal(ArrayCache(tmp_path).lookup(key, pixels=True)["x"], np.arange(4))


def test_a_value_another_worker_stored_first_is_the_one_kept(tmp_path):
    key = {"kind": "test", "steps": 2}
    ArrayCache(tmp_path).store(key, {"x": np.arange(4)}, 1.0)
    served = ArrayCache(tmp_path).store(key, {"x": np.arange(4) + 1}, 1.0)
    assert np.array_equal(served["x"], np.arange(4))
    assert np.array_equal(ArrayCache(tmp_path).lookup(key)["x"], np.arange(4))
