"""Datasets stored as image folders, whatever their layout: what a loader lists (`Sample`, `Listing`), the checks
a listing must pass, the class-balanced order samples are taken in, and decoding to model-sized pixels.

A layout module (harness.data.imagenet) turns a dataset folder into a `Listing`; this module does everything
after: `check_complete` (the published count, or a `manifest.json` override), `verify_checksums` (`SHA256SUMS`),
`balanced_order`, `files_fingerprint` (the cache key's view of the files) and `decode_pieces` (PIL decoding,
torchvision-style resize and center crop, in pieces; undecodable files skipped and named).
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from ..files import sha256_file
from .base import DataMalformedError, DataMissingError, Preprocess

DATA_SEED = 0  # fixes sample selection; run seeds (--seed) never change which images are evaluated
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp"})

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
            "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One evaluation sample: one image, or the frames of a sequence (anchor in the middle). `label_set` holds
    the ImageNet indices that count as correct (the first is `EvalData.labels`; empty: no ImageNet class fits,
    and the sample always counts as wrong); `group` is the dataset's own class, the unit of class balancing.
    `frame_label_sets`, for a sequence whose frames are each judged on their own labels, holds one set per path."""

    paths: tuple[Path, ...]
    label_set: tuple[int, ...]
    group: int
    frame_label_sets: tuple[tuple[int, ...], ...] | None = None


@dataclasses.dataclass(frozen=True)
class Listing:
    """What a loader found: the samples, the dataset folder, the files whose content defines the data (images
    and metadata, fingerprinted for the cache key), how many images there are and should be."""

    folder: Path
    samples: list[Sample]
    files: list[Path]
    n_images: int
    expected_images: int
    class_subset: tuple[int, ...] | None = None
    border: int = 0  # pixels cropped from every edge before resizing


# ---------------------------------------------------------------------------------------------- listing

def missing(folder: Path, what: str, source: str) -> DataMissingError:
    return DataMissingError(f"{what} not found at {folder}; {source}")


def require_dir(folder: Path, source: str) -> Path:
    if not folder.is_dir():
        raise missing(folder, "dataset folder", source)
    return folder


def read_json(path: Path, source: str) -> Any:
    """The parsed metadata file at `path` of a dataset folder that is present; DataMalformedError when it is
    missing or not JSON."""
    try:
        return json.loads(_metadata_text(path, source))
    except json.JSONDecodeError as error:
        raise DataMalformedError(f"{path}: not a JSON file ({error}); replace it with the release's ({source})") from None


def read_lines(path: Path, source: str) -> list[str]:
    """The lines (without line ends) of the plain-text metadata file at `path`; a final empty line is dropped."""
    lines = _metadata_text(path, source).split("\n")
    return [line.rstrip("\r") for line in (lines[:-1] if lines and lines[-1] == "" else lines)]


def _metadata_text(path: Path, source: str) -> str:
    if not path.is_file():
        raise DataMalformedError(f"{path}: metadata file missing from the dataset folder {path.parent}, which is "
                                 f"present; restore it from the release ({source})")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataMalformedError(f"{path}: unreadable metadata file ({error}); restore it from the release "
                                 f"({source})") from None


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; other files (by extension) are ignored. Listed with
    `os.scandir`, whose entries know their type without a `stat` per file (a 50,000-image val is listed once
    per case), and sorted as names, not as paths."""
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries if _is(entry, directory=False))
    return [path for path in (folder / name for name in names) if path.suffix.lower() in IMAGE_EXTENSIONS]


def class_dirs(folder: Path) -> list[Path]:
    """Folders directly in `folder`, sorted by name."""
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries if _is(entry, directory=True))
    return [folder / name for name in names]


_UNFOLLOWABLE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _is(entry: os.DirEntry, directory: bool) -> bool:
    """Whether `entry` is a folder (or a file), links followed; False for a link that cannot be followed (broken,
    looping, through a file), as `Path.is_dir` / `is_file` answer."""
    try:
        return entry.is_dir() if directory else entry.is_file()
    except OSError as error:
        if error.errno in _UNFOLLOWABLE:
            return False
        raise


def folder_listing(folder: Path, dirs: Sequence[tuple[Path, int]], expected: int,
                    class_subset: tuple[int, ...] | None = None) -> Listing:
    """A listing of single-image samples from class folders, each given with its ImageNet index."""
    samples, files = [], []
    for directory, index in dirs:
        images = image_files(directory)
        files += images
        samples += [Sample((path,), (index,), index) for path in images]
    return Listing(folder, samples, files, len(files), expected, class_subset)


# ------------------------------------------------------------------------------------ checks and selection

def check_complete(listing: Listing) -> None:
    """Raise DataMalformedError "partial: found X of Y" when fewer images are present than expected (a dataset
    that is there but incomplete is never a skip); a `manifest.json` `{"expected_images": X}` in the dataset
    folder replaces the published count."""
    expected = listing.expected_images
    manifest = listing.folder / "manifest.json"
    if manifest.is_file():
        try:
            expected = int(json.loads(manifest.read_text(encoding="utf-8"))["expected_images"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise DataMalformedError(f"{manifest}: expected {{\"expected_images\": N}} ({error!r})") from None
    if listing.n_images < expected:
        raise DataMalformedError(
            f"partial: found {listing.n_images} of {expected} images in {listing.folder}; complete the download, "
            f"or, for a deliberately reduced tree, write {manifest} with {{\"expected_images\": {listing.n_images}}}")


def verify_checksums(folder: Path) -> None:
    """When `folder/SHA256SUMS` exists (lines `<sha256>  <relative path>`), every listed file must exist and
    match; raises DataMalformedError naming the files that do not."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return
    bad = []
    for line in sums.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = folder / name.lstrip("*")
        if not path.is_file() or sha256_file(path) != digest.lower():
            bad.append(str(path))
    if bad:
        raise DataMalformedError(f"{len(bad)} file(s) missing or failing {sums}: {', '.join(bad[:10])}")


def balanced_order(samples: Sequence[Sample], seed: int = DATA_SEED) -> list[Sample]:
    """All samples, class-balanced: each group shuffled (one generator, groups in ascending order, a group's
    members permuted from their listing order), then taken round-robin (the first of every group, then the
    second, ...), so any prefix is as balanced as possible. Computed on index arrays: a tuple per sample made the
    garbage collector sweep the whole process, a loaded model's objects included, several times per listing."""
    rng = np.random.default_rng(seed)
    groups, members = np.unique(np.fromiter((sample.group for sample in samples), np.int64, len(samples)),
                                return_inverse=True)
    by_group = np.argsort(members, kind="stable")
    starts = np.searchsorted(members[by_group], np.arange(len(groups) + 1))
    shuffled = np.concatenate([np.zeros(0, np.int64)] + [by_group[start:stop][rng.permutation(stop - start)]
                                                         for start, stop in zip(starts[:-1], starts[1:])])
    ranks = np.arange(len(samples)) - np.repeat(starts[:-1], np.diff(starts))
    return [samples[i] for i in shuffled[np.lexsort((members[shuffled], ranks))]]


def files_fingerprint(folder: Path, files: Sequence[Path]) -> str:
    """sha256 over the files' paths relative to `folder` (`..` for files beside it), sizes and modification times.
    DataMalformedError names a listed file that is gone (removed after the split was listed)."""
    digest = hashlib.sha256()
    inside = f"{folder}{os.sep}"
    for path in files:
        name = str(path)
        try:
            stat = os.stat(name)
        except FileNotFoundError:
            raise DataMalformedError(f"{name}: removed after its dataset {folder} was listed; leave the dataset "
                                     f"unchanged while a run reads it, and run the case again") from None
        relative = name[len(inside):] if name.startswith(inside) else os.path.relpath(name, folder)
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- decoding

def decode(path: Path, preprocess: Preprocess, border: int = 0) -> np.ndarray | None:
    """uint8 (size, size, 3) pixels of the image at `path`, or None when it does not decode.

    `border` pixels are cropped from every edge first; then the shorter side is resized to `preprocess.resize`
    (the longer to int(resize * long / short), as torchvision) with `preprocess.interpolation`, and the center
    `preprocess.size` square is cropped.
    """
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if border:
        rgb = rgb.crop((border, border, rgb.width - border, rgb.height - border))
    return resize_crop(rgb, preprocess)


def resize_crop(image: Image.Image, preprocess: Preprocess) -> np.ndarray:
    width, height = image.size
    short, long = sorted((width, height))
    new_long = int(preprocess.resize * long / short)
    size = (preprocess.resize, new_long) if width <= height else (new_long, preprocess.resize)
    resized = image.resize(size, RESAMPLE[preprocess.interpolation])
    left = int(round((resized.width - preprocess.size) / 2.0))
    top = int(round((resized.height - preprocess.size) / 2.0))
    return np.asarray(resized.crop((left, top, left + preprocess.size, top + preprocess.size)), dtype=np.uint8)


DECODE_THREADS = min(4, os.cpu_count() or 1)  # PIL decodes and resizes without the GIL


@dataclasses.dataclass(frozen=True)
class DecodedPiece:
    """Consecutive samples that decoded entirely: `images` uint8 (k, H, W, 3), or (k, F, H, W, 3) for frames;
    `label_sets` per sample, its frames' label sets when per frame, else its own as a one-tuple; `unreadable`
    the paths that failed to decode meanwhile, in the order met; `consumed` how many samples were looked at
    from the start of the decoding up to this piece's end."""

    images: np.ndarray
    label_sets: list[tuple[tuple[int, ...], ...]]
    unreadable: list[str]
    consumed: int


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How a listing's samples decode: `preprocess`, `border` pixels cropped first (`decode`), `frames`: each
    sample a sequence (images (F, H, W, 3)), `per_frame`: its frames carry label sets of their own."""

    preprocess: Preprocess
    border: int = 0
    frames: bool = False
    per_frame: bool = False


def decode_pieces(samples: Sequence[Sample], n: int, piece: int, decoding: Decoding) -> Iterator[DecodedPiece]:
    """The first `n` samples of `samples` that decode entirely, decoded on DECODE_THREADS threads, in pieces of
    `piece` samples each (the last, or all once `samples` run out, may hold fewer), so that each piece can be
    used while the next decodes: a file that fails is skipped and the next sample takes its place, so the
    pieces do not depend on where decoding failed. The last piece is empty when the samples ran out with only
    unreadable ones left (or nothing decoded at all): it carries their paths and the count looked at."""
    position = got = 0
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        while got == 0 or (got < n and position < len(samples)):
            images, label_sets, unreadable = [], [], []
            wanted = min(piece, n - got)
            while len(images) < wanted and position < len(samples):
                batch = samples[position:position + wanted - len(images)]
                position += len(batch)
                paths = list(dict.fromkeys(path for sample in batch for path in sample.paths))
                decoded = dict(zip(paths, pool.map(lambda path: decode(path, decoding.preprocess, decoding.border),
                                                   paths)))
                for sample in batch:
                    failed = [str(path) for path in dict.fromkeys(sample.paths) if decoded[path] is None]
                    if failed:
                        unreadable += failed
                        continue
                    stack = np.stack([decoded[path] for path in sample.paths])
                    images.append(stack if decoding.frames else stack[0])
                    label_sets.append(sample.frame_label_sets if decoding.per_frame else (sample.label_set,))
            got += len(images)
            size = decoding.preprocess.size
            shape = (0, *((1,) if decoding.frames else ()), size, size, 3)
            yield DecodedPiece(np.stack(images) if images else np.zeros(shape, np.uint8), label_sets, unreadable,
                               position)
            if not images:
                return


def padded_label_sets(label_sets: Sequence[Sequence[Sequence[int]]], per_frame: bool) -> np.ndarray:
    """int64 (N, K) label sets padded with -1, or (N, F, K) per frame (`DecodedPiece.label_sets`' layout)."""
    width = max([1] + [len(s) for sets in label_sets for s in sets])
    depth = max([1] + [len(sets) for sets in label_sets])
    padded = np.full((len(label_sets), depth, width), -1, dtype=np.int64)
    for row, sets in enumerate(label_sets):
        for frame, label_set in enumerate(sets):
            padded[row, frame, :len(label_set)] = label_set
    return padded if per_frame else padded[:, 0]


def sample_labels(label_sets: np.ndarray) -> np.ndarray:
    """int64 (N,): each sample's first class, the anchor's (the middle frame's when per frame); -1 for none."""
    return (label_sets[:, label_sets.shape[1] // 2, 0] if label_sets.ndim == 3 else label_sets[:, 0]).copy()
