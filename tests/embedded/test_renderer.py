"""Fast tests of the embedded benchmark renderer (harness.embedded.renderer)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from harness.embedded import REFERENCE_CHECKPOINT
from harness.embedded import renderer as bm

N_CLASSES = len(bm.CLASSNAMES)
STILL = ("train", "test", "v2", "sketch", "rendition", "pose")
SEQUENCES = ("vid", "ytbb")


def test_public_constants():
    assert bm.IMAGE_SIZE == 64
    assert N_CLASSES >= 10 and len(set(bm.CLASSNAMES)) == N_CLASSES
    assert all(name.isalpha() and name.islower() for name in bm.CLASSNAMES)
    assert 5 <= len(bm.TEMPLATES) <= 10 and all(t.count("{}") == 1 for t in bm.TEMPLATES)
    assert bm.SPLITS == ("train", "test", "v2", "sketch", "rendition", "hard", "pose", "vid", "ytbb")
    assert set(bm.SPLIT_SIZES) == set(bm.SPLITS) - {"train"}
    assert bm.SPLIT_SIZES["hard"] >= 300
    assert all(size % N_CLASSES == 0 for size in bm.SPLIT_SIZES.values())


@pytest.mark.parametrize("split", STILL)
def test_still_split_shapes_and_labels(split):
    out = bm.render_split(split, 12)
    assert out.images.shape == (12, 64, 64, 3) and out.images.dtype == np.uint8
    assert out.labels.dtype == np.int64 and out.labels.tolist() == [i % N_CLASSES for i in range(12)]
    assert out.split == split and out.seed == 0
    assert out.images.std() > 10  # not blank


@pytest.mark.parametrize("split", SEQUENCES)
def test_sequence_split_shapes(split):
    out = bm.render_split(split, 3)
    assert out.images.shape == (3, bm.FRAMES, 64, 64, 3) and out.images.dtype == np.uint8
    assert out.labels.tolist() == [0, 1, 2]
    frames = out.images[0].astype(int)
    assert 0 < np.abs(frames[bm.FRAMES // 2] - frames[bm.FRAMES // 2 + 1]).mean() < 40  # close, not identical


@pytest.mark.parametrize("split", ("train", "sketch", "hard", "ytbb"))
def test_deterministic(split):
    a, b = bm.render_split(split, 4), bm.render_split(split, 4)
    assert a.images.tobytes() == b.images.tobytes() and np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize("split", ("train", "test", "rendition", "vid"))
def test_seed_changes_pixels(split):
    assert not np.array_equal(bm.render_split(split, 4, seed=0).images, bm.render_split(split, 4, seed=1).images)


def test_splits_are_distinct_streams():
    firsts = [bm.render_split(split, 1).images[0] for split in STILL]
    assert len({f.tobytes() for f in firsts}) == len(STILL)


@pytest.mark.parametrize("split", ("train", "pose", "hard", "vid"))
def test_prefix_property(split):
    assert np.array_equal(bm.render_split(split, 3).images, bm.render_split(split, 7).images[:3])


def test_class_balance():
    labels = bm.render_split("rendition", 5 * N_CLASSES).labels
    assert np.bincount(labels, minlength=N_CLASSES).tolist() == [5] * N_CLASSES


def test_sizes_and_arguments():
    assert bm._split_size("vid", 10_000) == bm.SPLIT_SIZES["vid"]  # capped at the published size
    assert bm.render_split("test", 0).images.shape == (0, 64, 64, 3)
    with pytest.raises(ValueError):
        bm.render_split("train")
    with pytest.raises(ValueError):
        bm.render_split("imagenet", 4)
    with pytest.raises(ValueError):
        bm.render_split("hard", 4, seed=12345)


def test_train_captions_name_the_class():
    captions = bm.train_captions(2 * N_CLASSES)
    assert all(bm.CLASSNAMES[i % N_CLASSES] in c for i, c in enumerate(captions))
    assert captions == bm.train_captions(2 * N_CLASSES)


def test_some_train_images_carry_text():
    texts = [bm._scene("train", 0, i).text for i in range(400)]
    with_text = [t for t in texts if t]
    assert 0.15 < len(with_text) / len(texts) < 0.35
    assert sum(t in bm.CLASSNAMES for t in with_text) > 0.7 * len(with_text)
    assert not any(bm._scene("test", 0, i).text for i in range(100))


def test_draw_text_changes_pixels_and_copies():
    image = np.full((64, 64, 3), 200, np.uint8)
    out = bm.draw_text(image, "fish", position=(12, 20), size=14, color=(0, 0, 0))
    assert out is not image and out.dtype == np.uint8 and out.shape == image.shape
    assert (image == 200).all()
    changed = (out != image).any(axis=2)
    assert changed.sum() > 40 and changed[:, :8].sum() == 0 and changed[:16].sum() == 0


def test_hard_split_record_consistent():
    record = json.loads(bm.HARD_SPLIT_PATH.read_text())
    assert record["renderer_version"] == bm.RENDERER_VERSION
    indices = record["indices"]
    assert len(indices) == bm.SPLIT_SIZES["hard"] and len(set(indices)) == len(indices)
    assert all(0 <= idx < record["candidate_pool"] for idx in indices)
    assert all(idx % N_CLASSES == i % N_CLASSES for i, idx in enumerate(indices))
    assert record["reference_checkpoint_sha256"] == hashlib.sha256(REFERENCE_CHECKPOINT.read_bytes()).hexdigest()
    hard = bm.render_split("hard", 3)
    assert np.array_equal(hard.images, bm.render_candidates(indices[:3]).images)


def test_cached_hard_split_follows_hard_split_json(tmp_path, monkeypatch):
    """Retraining the reference CNN rewrites hard_split.json; the cached hard split must not outlive it."""
    from harness.cache import ArrayCache
    from harness.data import Preprocess, get_benchmark

    cache, preprocess = ArrayCache(tmp_path), Preprocess(bm.IMAGE_SIZE, bm.IMAGE_SIZE)
    committed = get_benchmark("synth").load("hard", 20, cache, preprocess)
    seed, indices = bm.load_hard_indices()
    monkeypatch.setattr(bm, "load_hard_indices", lambda: (seed, indices[10:] + indices[:10]))
    rebuilt = get_benchmark("synth").load("hard", 20, cache, preprocess)
    assert rebuilt.provenance["sha256"] != committed.provenance["sha256"]
    assert np.array_equal(rebuilt.images[:10], committed.images[10:20])
