"""Listing and fingerprinting of dataset folders (harness.data.folders)."""
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data import DataMalformedError
from harness.data.folders import IMAGE_EXTENSIONS, Sample, balanced_order, class_dirs, files_fingerprint, image_files


def _tree(root: Path) -> Path:
    folder = root / "val"
    for name in ("b.JPEG", "a.jpg", "c.PNG", "notes.txt", "d.webp"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode())
    (folder / "sub.jpg").mkdir()  # a folder with an image's name is not an image
    (folder / "link.jpeg").symlink_to(folder / "a.jpg")
    (folder / "broken.jpeg").symlink_to(folder / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "through.jpg").symlink_to(folder / "a.jpg" / "x")
    (folder / "..png").write_bytes(b"x")  # Path.suffix reads ".png"; a leading dot alone is no suffix
    (folder / ".jpg").write_bytes(b"x")
    return folder


def test_image_files_are_what_pathlib_lists_sorted_by_name_following_links(tmp_path):
    folder = _tree(tmp_path)
    expected = [folder / n for n in ("..png", "a.jpg", "b.JPEG", "c.PNG", "d.webp", "link.jpeg")]
    assert image_files(folder) == expected
    assert expected == sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def test_class_dirs_are_the_folders_sorted_by_name(tmp_path):
    for name in ("n2", "n1", "n10"):
        (tmp_path / name).mkdir()
    (tmp_path / "n0.txt").write_text("")
    (tmp_path / "n3").symlink_to(tmp_path / "n1")
    (tmp_path / "n4").symlink_to(tmp_path / "n4")
    (tmp_path / "n5").symlink_to(tmp_path / "n0.txt" / "x")
    assert class_dirs(tmp_path) == [tmp_path / n for n in ("n1", "n10", "n2", "n3")]


def test_the_fingerprint_keeps_its_definition_and_moves_with_any_file(tmp_path):
    """sha256 over `relative path NUL size NUL mtime_ns LF` per file, `..` for a file beside the folder: the key of
    every decoded-image cache entry, so it must not change with how it is computed."""
    folder = _tree(tmp_path)
    beside = tmp_path / "SHA256SUMS"
    beside.write_text("x")
    files = [*image_files(folder), beside]
    expected = hashlib.sha256()
    for path in files:
        stat = path.stat()
        expected.update(f"{os.path.relpath(path, folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    before = files_fingerprint(folder, files)
    assert before == expected.hexdigest()
    relative = Path(os.path.relpath(folder)), [Path(os.path.relpath(p)) for p in files]
    assert files_fingerprint(*relative) == before
    os.utime(files[0], ns=(0, 12345))
    assert files_fingerprint(folder, files) != before
    files[1].unlink()
    with pytest.raises(DataMalformedError, match=re.escape(f"{files[1]}: removed after its dataset {folder} was listed")):
        files_fingerprint(folder, files)


def _samples(groups: list[int]) -> list[Sample]:
    return [Sample((Path(f"{index}.jpg"),), (group,), group) for index, group in enumerate(groups)]


def _indices(samples: list[Sample]) -> list[int]:
    return [int(sample.paths[0].stem) for sample in samples]


def test_the_balanced_order_is_pinned():
    """The order picks which images a capped split evaluates (and every cache key of its chunks): it must not
    change with how it is computed."""
    samples = _samples([5, 2, 5, 9, 2, 5, 2, 2, 9, 7])
    assert _indices(balanced_order(samples)) == [6, 5, 9, 3, 1, 2, 8, 4, 0, 7]
    assert _indices(balanced_order(samples, seed=3)) == [7, 0, 9, 8, 6, 2, 3, 4, 5, 1]
    assert balanced_order([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 40), max_size=120), st.integers(0, 2**32 - 1))
def test_the_balanced_order_shuffles_each_group_then_takes_them_round_robin(groups, seed):
    rng = np.random.default_rng(seed)
    shuffled = []
    for group in sorted(set(groups)):
        members = [index for index, g in enumerate(groups) if g == group]
        shuffled.append([members[i] for i in rng.permutation(len(members))])
    expected = [members[rank] for rank in range(max(map(len, shuffled), default=0))
                for members in shuffled if rank < len(members)]
    assert _indices(balanced_order(_samples(groups), seed)) == expected
