"""`imagenet`: ImageNet val and its natural shifts, read from image folders under `--data-root`.

Every split is one dataset folder under the data root (layouts in the loaders' docstrings). This module knows
the layouts; steps 2 to 6 are harness.data.folders', shared by any image-folder dataset. A load:

1. lists the dataset's image files (extensions in folders.IMAGE_EXTENSIONS, case-insensitive; anything else, such as
   `.DS_Store` or `README.txt`, is ignored) and its metadata files;
2. checks completeness against the published image count (`EXPECTED_IMAGES`, or the frames the metadata lists):
   fewer files raise DataMissingError "partial: found X of Y". Miniature or deliberately partial trees opt out
   with a `manifest.json` in the dataset folder (the top folder of its layout, e.g. `<root>/imagenet/`),
   `{"expected_images": X}`, which replaces the published count;
3. orders the samples class-balanced and deterministically (DATA_SEED): each class's samples are shuffled with a
   generator seeded once for the dataset, then interleaved round-robin over classes in class order; the first
   `n` samples that decode are kept;
4. when the dataset folder holds `SHA256SUMS` (`sha256sum` output, paths relative to the folder), verifies every
   file it lists before decoding;
5. decodes with PIL (greyscale, palette, CMYK and RGBA converted to RGB; the format is read from the content, so
   a PNG named .JPEG decodes), resizes the shorter side to `preprocess.resize` and center-crops
   `preprocess.size`, as torchvision's Resize + CenterCrop do on PIL images;
6. skips a file that does not decode (empty, truncated, not an image; for a frame sequence, the whole
   sequence) and lists it in `provenance["unreadable_files"]`; the next sample in the balanced order takes its
   place.

Decoded arrays are cached through ArrayCache, keyed on the dataset, a fingerprint of its files (images, metadata
and SHA256SUMS: relative paths, sizes, mtimes), the preprocessing and `n`; checksums are verified on a miss.

Labels index the 1000 ImageNet classes in sorted-wnid order (open_clip's IMAGENET_CLASSNAMES order). Where a
sample has several correct classes (ObjectNet, ImageNet-Vid-Robust, YTBB-Robust), `EvalData.label_sets` lists
them and `labels` holds the first.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..cache import ArrayCache
from ..stream import DATA_CHUNK_SAMPLES, PIECE_SAMPLES, joined
from ..prompts import Prompts, openai_imagenet_templates
from .base import DataMalformedError, DataMissingError, EvalData, NaturalShift, Preprocess, content_sha256
from .folders import (DATA_SEED, DecodedPiece, Decoding, Listing, Sample, balanced_order, check_complete, class_dirs,
                      decode_pieces, files_fingerprint, folder_listing, image_files, missing, padded_label_sets,
                      read_json, read_lines, require_dir, sample_labels, verify_checksums)

LOADER_VERSION = 2  # bump when decoding or selection changes, so cached arrays are recomputed
PM_K_MAX = 10  # ImageNet-Vid-Robust and YTBB-Robust sets hold frames within 10 of the anchor
WNID = re.compile(r"n\d{8}")

# Published image counts (frames listed in the metadata, for the video datasets).
EXPECTED_IMAGES = {"val": 50_000, "v2": 10_000, "sketch": 50_889, "rendition": 30_000, "imagenet-a": 7_500,
                   "objectnet": 50_000}


def imagenet_wnids(root: Path) -> list[str]:
    """The 1000 ImageNet wnids in class-index order (sorted), from the class folders of `<root>/imagenet/val`,
    else of `<root>/imagenet-sketch/sketch` (both hold all 1000)."""
    for folder in (root / "imagenet" / "val", root / "imagenet-sketch" / "sketch"):
        if folder.is_dir():
            wnids = [p.name for p in class_dirs(folder) if WNID.fullmatch(p.name)]
            if len(wnids) != 1000:
                raise DataMalformedError(f"partial: found {len(wnids)} of 1000 wnid folders in {folder}")
            return wnids
    raise DataMissingError(
        f"the ImageNet class list (1000 wnid folders) was not found in {root / 'imagenet' / 'val'} or "
        f"{root / 'imagenet-sketch' / 'sketch'}; datasets labelled by wnid need one of them ({IMAGENET_SOURCE})")


# ------------------------------------------------------------------------------------------------- loaders

IMAGENET_SOURCE = ("ImageNet (ILSVRC2012) val is distributed at https://image-net.org/download after registration; "
                   "sort the 50,000 val images into wnid folders (e.g. with the devkit's ground truth or the widely "
                   "used valprep.sh)")


def load_val(root: Path) -> Listing:
    """ImageNet val: `<root>/imagenet/val/<wnid>/*.JPEG`, 1000 wnid folders, 50,000 images.

    The class index is the wnid's position among the sorted wnids (the standard order). Obtain: IMAGENET_SOURCE.
    """
    folder = require_dir(root / "imagenet", IMAGENET_SOURCE)
    require_dir(folder / "val", IMAGENET_SOURCE)
    wnids = imagenet_wnids(root)
    return folder_listing(folder, [(folder / "val" / w, i) for i, w in enumerate(wnids)], EXPECTED_IMAGES["val"])


IMAGENET_C_SOURCE = ("ImageNet-C (Hendrycks and Dietterich 2019): https://zenodo.org/record/2235448 (noise, blur, "
                     "weather and digital tars; extra.tar holds the 4 validation corruptions)")


def load_imagenet_c(root: Path, corruption: str, severity: int) -> Listing | None:
    """Pre-rendered ImageNet-C: `<root>/imagenet-c/<corruption>/<severity>/<wnid>/*.JPEG`, 1000 wnid folders,
    50,000 images of 224x224 per (corruption, severity); None when that folder is absent. Obtain:
    IMAGENET_C_SOURCE."""
    folder = root / "imagenet-c" / corruption / str(severity)
    if not folder.is_dir():
        return None
    wnids = sorted(p.name for p in class_dirs(folder) if WNID.fullmatch(p.name))
    if len(wnids) != 1000:
        raise DataMalformedError(f"partial: found {len(wnids)} of 1000 wnid folders in {folder} ({IMAGENET_C_SOURCE})")
    return folder_listing(folder, [(folder / w, i) for i, w in enumerate(wnids)], EXPECTED_IMAGES["val"])


STYLIZED_SOURCE = ("Stylized-ImageNet (Geirhos et al. 2019): rendered from ImageNet val with the authors' scripts "
                   "(github.com/rgeirhos/Stylized-ImageNet, AdaIN with 'Painter by Numbers' styles)")


def load_stylized(root: Path) -> Listing | None:
    """Stylized-ImageNet val: `<root>/stylized-imagenet/val/<wnid>/*`, 1000 wnid folders, 50,000 images; None when
    absent (the in-memory style swap is used instead). Obtain: STYLIZED_SOURCE."""
    folder = root / "stylized-imagenet"
    if not (folder / "val").is_dir():
        return None
    wnids = sorted(p.name for p in class_dirs(folder / "val") if WNID.fullmatch(p.name))
    if len(wnids) != 1000:
        raise DataMalformedError(f"partial: found {len(wnids)} of 1000 wnid folders in {folder / 'val'} "
                               f"({STYLIZED_SOURCE})")
    return folder_listing(folder, [(folder / "val" / w, i) for i, w in enumerate(wnids)], EXPECTED_IMAGES["val"])


V2_SOURCE = ("ImageNetV2 matched-frequency: https://huggingface.co/datasets/vaishaal/ImageNetV2 "
             "(imagenetv2-matched-frequency.tar.gz; its folder imagenetv2-matched-frequency-format-val is accepted "
             "under either name)")


def load_v2(root: Path) -> Listing:
    """ImageNetV2 matched-frequency: `<root>/imagenetv2-matched-frequency/<0..999>/*.jpeg` (folders named by class
    index; the tarball's folder name `imagenetv2-matched-frequency-format-val` is accepted too), 10,000 images.
    Obtain: V2_SOURCE."""
    candidates = [root / "imagenetv2-matched-frequency", root / "imagenetv2-matched-frequency-format-val"]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        raise missing(candidates[0], "dataset folder", V2_SOURCE)
    dirs = [(d, int(d.name)) for d in class_dirs(folder) if d.name.isdigit() and int(d.name) < 1000]
    return folder_listing(folder, dirs, EXPECTED_IMAGES["v2"])


SKETCH_SOURCE = "ImageNet-Sketch: https://github.com/HaohanWang/ImageNet-Sketch (also on the Hugging Face hub)"


def load_sketch(root: Path) -> Listing:
    """ImageNet-Sketch: `<root>/imagenet-sketch/sketch/<wnid>/*` (1000 wnid folders), 50,889 images.
    Obtain: SKETCH_SOURCE."""
    folder = require_dir(root / "imagenet-sketch", SKETCH_SOURCE)
    require_dir(folder / "sketch", SKETCH_SOURCE)
    wnids = imagenet_wnids(root)
    dirs = [(folder / "sketch" / w, i) for i, w in enumerate(wnids) if (folder / "sketch" / w).is_dir()]
    return folder_listing(folder, dirs, EXPECTED_IMAGES["sketch"])


def _wnid_subset_listing(root: Path, name: str, split: str, source: str) -> Listing:
    """A dataset of `<root>/<name>/<wnid>/*` covering a subset of the 1000 classes: the subset is the wnid
    folders present, set as `class_subset`; labels stay 1000-way indices."""
    folder = require_dir(root / name, source)
    index = {w: i for i, w in enumerate(imagenet_wnids(root))}
    dirs = [d for d in class_dirs(folder) if WNID.fullmatch(d.name)]
    unknown = [d.name for d in dirs if d.name not in index]
    if unknown:
        raise DataMissingError(f"{folder} holds wnid folders outside the 1000 ImageNet classes: {unknown[:5]}")
    subset = tuple(sorted(index[d.name] for d in dirs))
    return folder_listing(folder, [(d, index[d.name]) for d in dirs], EXPECTED_IMAGES[split], subset)


RENDITION_SOURCE = "ImageNet-R: https://github.com/hendrycks/imagenet-r (imagenet-r.tar)"
IMAGENET_A_SOURCE = "ImageNet-A: https://github.com/hendrycks/natural-adv-examples (imagenet-a.tar)"


def load_rendition(root: Path) -> Listing:
    """ImageNet-R: `<root>/imagenet-r/<wnid>/*`, 200 wnid folders, 30,000 images; predictions are restricted to
    the 200 classes present. The class order needs the 1000 wnids (`imagenet_wnids`). Obtain: RENDITION_SOURCE."""
    return _wnid_subset_listing(root, "imagenet-r", "rendition", RENDITION_SOURCE)


def load_imagenet_a(root: Path) -> Listing:
    """ImageNet-A: `<root>/imagenet-a/<wnid>/*`, 200 wnid folders, 7,500 images; predictions are restricted to
    the 200 classes present. The class order needs the 1000 wnids (`imagenet_wnids`). Obtain: IMAGENET_A_SOURCE."""
    return _wnid_subset_listing(root, "imagenet-a", "imagenet-a", IMAGENET_A_SOURCE)


OBJECTNET_SOURCE = "ObjectNet 1.0: https://objectnet.dev/download.html (objectnet-1.0.zip, password on the page)"


OBJECTNET_MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json", "imagenet_to_label_2012_v2",
                      "pytorch_to_imagenet_2012_id.json")
OBJECTNET_BORDER = 2  # pixels cropped from every edge, as both reference loaders (testbed, wise-ft) do


def load_objectnet(root: Path) -> Listing:
    """ObjectNet 1.0: `<root>/objectnet-1.0/images/<folder>/*.png` (313 class folders) and
    `<root>/objectnet-1.0/mappings/` as shipped (the files wise-ft's and the testbed's loaders read):

    - `folder_to_objectnet_label.json`: folder name -> ObjectNet label;
    - `objectnet_to_imagenet_1k.json`: ObjectNet label -> ImageNet class names separated by "; " (the 113
      labels that overlap ImageNet);
    - `imagenet_to_label_2012_v2`: plain text, 1000 lines, line i (0-based) the class name of ImageNet 2012 id i;
    - `pytorch_to_imagenet_2012_id.json`: class index (sorted-wnid order) -> that ImageNet 2012 id.

    A folder's ImageNet classes take three hops: folder -> ObjectNet label -> names -> the lines they are (a name
    is a whole line) -> class indices. Only the 113 overlapping classes are evaluated: a sample's `label_set` is
    its indices (a prediction in the set is correct), predictions are restricted to the union of the sets, and
    every image of a mapped folder counts. The images carry a thin border: OBJECTNET_BORDER pixels are cropped
    from every edge before resizing, as the reference loaders do. Completeness is checked against the published
    50,000 images of `images/` as a floor (the release zip is reported to hold 50,273 files). Obtain:
    OBJECTNET_SOURCE.
    """
    folder = require_dir(root / "objectnet-1.0", OBJECTNET_SOURCE)
    images_dir = require_dir(folder / "images", OBJECTNET_SOURCE)
    mappings = folder / "mappings"
    folder_label, label_names = (read_json(mappings / name, OBJECTNET_SOURCE) for name in OBJECTNET_MAPPINGS[:2])
    id_names = read_lines(mappings / OBJECTNET_MAPPINGS[2], OBJECTNET_SOURCE)
    index_id = read_json(mappings / OBJECTNET_MAPPINGS[3], OBJECTNET_SOURCE)
    name_to_indices = _objectnet_name_indices(id_names, index_id, mappings)
    samples, files = [], [mappings / name for name in OBJECTNET_MAPPINGS]
    n_images = 0
    for group, directory in enumerate(class_dirs(images_dir)):
        images = image_files(directory)
        n_images += len(images)
        files += images
        label = folder_label.get(directory.name)
        if label not in label_names:
            continue
        label_set = _objectnet_label_set(label, label_names[label], name_to_indices, mappings)
        samples += [Sample((path,), label_set, group) for path in images]
    subset = tuple(sorted({i for sample in samples for i in sample.label_set}))
    return Listing(folder, samples, files, n_images, EXPECTED_IMAGES["objectnet"], subset, border=OBJECTNET_BORDER)


def _objectnet_name_indices(id_names: list[str], index_id: Mapping[str, int], mappings: Path) -> dict[str, set[int]]:
    """ImageNet class name (a whole line of imagenet_to_label_2012_v2) -> the class indices (sorted-wnid order)
    of the ImageNet 2012 ids whose line it is (two ids share the name "crane")."""
    if len(id_names) != 1000 or len(index_id) != 1000:
        raise DataMalformedError(f"{mappings}: {OBJECTNET_MAPPINGS[2]} must hold 1000 class names, one a line, and "
                                 f"{OBJECTNET_MAPPINGS[3]} 1000 entries; found {len(id_names)} and {len(index_id)}")
    id_to_index = {int(imagenet_id): int(index) for index, imagenet_id in index_id.items()}
    name_to_indices: dict[str, set[int]] = {}
    for imagenet_id, name in enumerate(id_names):
        if imagenet_id in id_to_index:
            name_to_indices.setdefault(name, set()).add(id_to_index[imagenet_id])
    return name_to_indices


def _objectnet_label_set(label: str, names: str, name_to_indices: dict[str, set[int]],
                         mappings: Path) -> tuple[int, ...]:
    """The ImageNet indices of the "; "-separated class `names` that ObjectNet `label` maps to."""
    wanted = [name.strip() for name in names.split(";")]
    unknown = [name for name in wanted if name not in name_to_indices]
    if unknown:
        raise DataMalformedError(f"{mappings}: ObjectNet label {label!r} maps to ImageNet names {unknown} that are "
                                 f"no line of {OBJECTNET_MAPPINGS[2]}")
    return tuple(sorted(set().union(*(name_to_indices[name] for name in wanted))))


VIDEO_SOURCE = ("ImageNet-Vid-Robust and YTBB-Robust: https://github.com/modestyachts/natural-perturbations-video "
                "(Shankar et al., 'Do Image Classifiers Generalize Across Time?'; imagenet_vid_ytbb_robust.tar.gz)")


VID_METADATA = ("metadata/pmsets.json", "metadata/labels.json", "misc/imagenet_vid_class_index.json",
                "misc/rev_wnid_map.json", "misc/imagenet_class_index.json", "misc/wnid_map.json")


def load_vid_robust(root: Path, frames: int) -> Listing:
    """ImageNet-Vid-Robust under `<root>/imagenet-vid-robust/` as released (read as the ImageNet testbed's
    eval setting does): frames `val/ILSVRC20xx_val_<video>/<6 digits>.JPEG` and, paths relative to that folder,

    - `metadata/pmsets.json`: anchor frame -> its neighbour frames (up to 20, within 10 of the anchor);
    - `metadata/labels.json`: every frame -> the VID class indices present in it;
    - `misc/imagenet_vid_class_index.json`: VID class index -> [VID wnid, name] (30 classes);
    - `misc/rev_wnid_map.json`: VID wnid -> the ImageNet wnids that are that class;
    - `misc/imagenet_class_index.json`: ImageNet class index -> [wnid, name];
    - `misc/wnid_map.json`: the forward map (ImageNet wnid -> VID wnid), shipped beside and checked present.

    A sample is an anchor's sequence of `frames` frames (1: the anchor alone, for pm-0; 21 for pm-10): slot j holds
    the listed frame at offset j - frames // 2 from the anchor by frame number (an integer, not the path's text),
    or the anchor where none is listed, which leaves pm-k unchanged. Each frame is judged on its own entry in
    labels.json (two real anchors have neighbours labelled otherwise): its correct ImageNet classes are those
    mapped to its VID classes, and predictions are restricted to all mapped ImageNet classes, which equals the
    testbed's projection of logits onto VID classes by max. An anchor with no mapped class counts as wrong; all
    anchors are scored. The completeness check counts the distinct frames pmsets.json lists.
    """
    folder = require_dir(root / "imagenet-vid-robust", VIDEO_SOURCE)
    meta = [folder / path for path in VID_METADATA]
    pmsets, labels, vid_classes, rev_wnid_map, imagenet_classes, _ = (read_json(path, VIDEO_SOURCE) for path in meta)
    index_of = {wnid: int(index) for index, (wnid, _) in imagenet_classes.items()}
    vid_to_imagenet = {int(index): sorted(index_of[w] for w in rev_wnid_map.get(wnid, []) if w in index_of)
                       for index, (wnid, _) in vid_classes.items()}

    def classes_of(frame: str) -> tuple[int, ...]:
        if frame not in labels:
            raise DataMalformedError(f"{meta[1]}: frame {frame!r}, listed in {meta[0].name}, has no labels")
        return tuple(sorted({i for c in labels[frame] for i in vid_to_imagenet.get(int(c), [])}))

    listed = sorted({folder / p for anchor, others in pmsets.items() for p in [anchor, *others]})
    present = [path for path in listed if path.is_file()]
    samples = []
    for anchor in sorted(pmsets):
        paths = frame_window(anchor, pmsets[anchor], frames // 2)
        own = [int(c) for c in labels.get(anchor, [])]
        samples.append(Sample(tuple(folder / p for p in paths), classes_of(anchor), min(own, default=-1),
                              tuple(classes_of(p) for p in paths)))
    subset = tuple(sorted({i for indices in vid_to_imagenet.values() for i in indices}))
    return Listing(folder, samples, meta + present, len(present), len(listed), subset)


def frame_number(path: str) -> int:
    """The frame's number in its video: the integer in its file name (`000123.JPEG`, `frame-1000.jpg`)."""
    digits = re.findall(r"\d+", Path(path).stem)
    if not digits:
        raise DataMalformedError(f"frame {path!r} has no frame number in its name")
    return int(digits[-1])


def frame_window(anchor: str, neighbours: Sequence[str], half: int) -> list[str]:
    """2 * half + 1 frame paths, slot j the neighbour at offset j - half from `anchor` by frame number (the anchor
    itself in the middle, and where no neighbour is listed at an offset)."""
    start = frame_number(anchor)
    by_offset = {frame_number(path) - start: path for path in neighbours}
    return [anchor if offset == 0 else by_offset.get(offset, anchor) for offset in range(-half, half + 1)]


YTBB_METADATA = ("anchor_labels.json", "pmk_labels.json", "ytbb_class_index.json", "rev_class_idx_map.json",
                 "ytbb_robustness_test_anchors_full.csv")
YTBB_NEIGHBOUR_REJECTED = frozenset({"dissimilar", "problematic", "incorrect", "dont know", "deformation",
                                     "background-change", "occlusion-increased", "blur-increase", "bad-anchor"})
YTBB_CSV_SWAPPED = {22: 23, 23: 22}  # the CSV numbers "none" and "car" the other way round from ytbb_class_index


def load_ytbb_robust(root: Path, frames: int) -> Listing:
    """YTBB-Robust under `<root>/ytbb-robust/`: frames `ytbb_videos/<youtube id>_<anchor ms>/frame-<n>.jpg` (n not
    zero-padded) and, in `metadata/`, the files the ImageNet testbed's eval setting reads (its
    `ytbb-robust_metadata/` folder with the release's `pmk_labels.json`):

    - `anchor_labels.json`, `pmk_labels.json`: the annotation tool's format, {"labels": [names], "annotations":
      [{"key", "labels": [indices into names], "notes"}]}; anchor keys are `<video>/frame-<n>.jpg` (or absolute
      paths ending so), pair keys `<anchor key>,<frame key>`;
    - `ytbb_class_index.json`: YTBB class index -> name (24 classes; 22 "none", 23 "car");
    - `rev_class_idx_map.json`: YTBB class index -> the ImageNet class indices it projects from;
    - `ytbb_robustness_test_anchors_full.csv`: ytid,time_ms,label, each anchor video's original YTBB label, with
      22 and 23 the other way round.

    As the testbed scores it: an anchor is kept when annotated `good` and neither `bad` nor `unsure`, and none of
    its pairs is tagged `bad-anchor`; a neighbour within PM_K_MAX frames is kept when its pair is tagged
    `similar` and none of YTBB_NEIGHBOUR_REJECTED. An anchor's classes are those its annotation names and its
    CSV label (swapped back); they project onto ImageNet through rev_class_idx_map.json ("none" never), and
    every frame of a sequence is judged against the anchor's classes. An anchor whose classes map to no ImageNet
    class is kept and counts as wrong. Frames are placed by frame number (`frame_window`). The completeness check
    counts the frames of the kept anchors and neighbours.
    """
    folder = require_dir(root / "ytbb-robust", VIDEO_SOURCE)
    videos = require_dir(folder / "ytbb_videos", VIDEO_SOURCE)
    meta = [folder / "metadata" / name for name in YTBB_METADATA]
    anchor_labels, pmk_labels, class_index, rev_map = (read_json(path, VIDEO_SOURCE) for path in meta[:4])
    csv_labels = _ytbb_csv_labels(meta[4])
    ytbb_index = {name: int(index) for index, name in class_index.items()}
    to_imagenet = {int(index): [int(i) for i in indices] for index, indices in rev_map.items()
                   if class_index.get(index) != "none"}
    anchors = {_ytbb_key(entry["key"]): set(_tags(anchor_labels, entry, meta[0])) for entry in
               _annotations(anchor_labels, meta[0])}
    neighbours: dict[str, list[str]] = {anchor: [] for anchor in anchors}
    bad_anchors = set()
    for entry in _annotations(pmk_labels, meta[1]):
        anchor_key, _, frame_key = entry["key"].partition(",")
        anchor, frame, tags = _ytbb_key(anchor_key), _ytbb_key(frame_key), set(_tags(pmk_labels, entry, meta[1]))
        if "bad-anchor" in tags:
            bad_anchors.add(anchor)
        if anchor in neighbours and "similar" in tags and not tags & YTBB_NEIGHBOUR_REJECTED and \
                abs(frame_number(frame) - frame_number(anchor)) <= PM_K_MAX:
            neighbours[anchor].append(frame)
    samples, frame_files = [], set()
    for anchor in sorted(anchors):
        tags = anchors[anchor]
        if "good" not in tags or tags & {"bad", "unsure"} or anchor in bad_anchors:
            continue
        classes = {ytbb_index[tag] for tag in tags if tag in ytbb_index}
        if anchor.split("/")[0] in csv_labels:
            classes.add(csv_labels[anchor.split("/")[0]])
        label_set = tuple(sorted({i for c in classes for i in to_imagenet.get(c, [])}))
        paths = frame_window(anchor, neighbours[anchor], frames // 2)
        frame_files |= {videos / anchor, *(videos / p for p in neighbours[anchor])}
        samples.append(Sample(tuple(videos / p for p in paths), label_set, min(classes, default=-1)))
    present = sorted(path for path in frame_files if path.is_file())
    subset = tuple(sorted({i for indices in to_imagenet.values() for i in indices}))
    return Listing(folder, samples, meta + present, len(present), len(frame_files), subset)


def _ytbb_key(key: str) -> str:
    """`<video>/frame-<n>.jpg`: the last two components of an annotation key (some are absolute paths)."""
    return "/".join(key.strip().split("/")[-2:])


def _annotations(document: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("annotations"), list) or \
            not isinstance(document.get("labels"), list):
        raise DataMalformedError(f"{path}: not the annotation tool's format ({{\"labels\": [names], "
                                 f"\"annotations\": [{{\"key\", \"labels\"}}]}})")
    return document["annotations"]


def _tags(document: dict[str, Any], entry: dict[str, Any], path: Path) -> list[str]:
    names = document["labels"]
    try:
        return [names[int(index)] for index in entry["labels"]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise DataMalformedError(f"{path}: annotation {entry.get('key')!r} has labels {entry.get('labels')!r} that "
                                 f"index no name of its {len(names)} labels") from None


def _ytbb_csv_labels(path: Path) -> dict[str, int]:
    """`<ytid>_<time_ms>` -> the anchor video's YTBB class, from the CSV (22 and 23 swapped back)."""
    rows = read_lines(path, VIDEO_SOURCE)
    if not rows or rows[0].strip() != "ytid,time_ms,label":
        raise DataMalformedError(f"{path}: expected a CSV with header ytid,time_ms,label")
    labels = {}
    for row in rows[1:]:
        if row.strip():
            ytid, time_ms, label = row.strip().rsplit(",", 2)
            labels[f"{ytid}_{time_ms}"] = YTBB_CSV_SWAPPED.get(int(label), int(label))
    return labels


LOADERS: dict[str, Callable[[Path], Listing]] = {
    "val": load_val,
    "v2": load_v2,
    "sketch": load_sketch,
    "rendition": load_rendition,
    "imagenet-a": load_imagenet_a,
    "objectnet": load_objectnet,
    "vid-pm0": lambda root: load_vid_robust(root, 1),
    "vid-pm10": lambda root: load_vid_robust(root, 2 * PM_K_MAX + 1),
    "ytbb-pm0": lambda root: load_ytbb_robust(root, 1),
    "ytbb-pm10": lambda root: load_ytbb_robust(root, 2 * PM_K_MAX + 1),
}


# The testbed's in-distribution splits of the shifts over a class subset: `val` restricted to the classes of the
# shift (its listing's class subset), scored with predictions restricted to them as the shift's are.
ON_CLASSES = {"val-on-imagenet-r-classes": "rendition", "val-on-imagenet-a-classes": "imagenet-a",
              "val-on-objectnet-classes": "objectnet", "val-on-vid-robust-classes": "vid-pm0",
              "val-on-ytbb-robust-classes": "ytbb-pm0"}


def val_on_classes(val: Listing, shift: Listing) -> Listing:
    """ImageNet `val`'s images of the classes the `shift` listing covers, with that class subset. Its completeness
    is val's (checked on all of val), and its files are both listings' (the shift's metadata defines the subset)."""
    classes = set(shift.class_subset or ())
    samples = [sample for sample in val.samples if sample.label_set[0] in classes]
    return Listing(val.folder, samples, val.files + shift.files, val.n_images, val.expected_images, shift.class_subset)


# --------------------------------------------------------------------------------------------- benchmark

class ImageNetBenchmark:
    """The ImageNet benchmark: clean split `val` and its natural shifts, read from `data_root`.

    An instance lists each split once, when first asked (`check`, `load`, `stream`, or a `val-on-*-classes` split
    built from val's and the shift's listings, the pm-0 one for a video shift, so a pm-10 case lists its frames
    twice), so that a case checked before its model loads does not list a 50,000-image folder again; a new
    instance (`get_benchmark`) lists afresh, and a file removed in between fails the stream (DataMalformedError). The cache key's file fingerprint
    (sizes and modification times) is taken at every `stream`."""

    name = "imagenet"
    clean_split = "val"
    natural_shifts = (
        NaturalShift("v2", "v2"),
        NaturalShift("sketch", "sketch"),
        NaturalShift("rendition", "rendition", id_split="val-on-imagenet-r-classes"),
        NaturalShift("imagenet-a", "imagenet-a", id_split="val-on-imagenet-a-classes"),
        NaturalShift("objectnet", "objectnet", id_split="val-on-objectnet-classes"),
        NaturalShift("vid-pm0", "vid-pm0", k=0, id_split="val-on-vid-robust-classes"),
        NaturalShift("vid-pm10", "vid-pm10", k=PM_K_MAX, id_split="val-on-vid-robust-classes"),
        NaturalShift("ytbb-pm0", "ytbb-pm0", k=0, id_split="val-on-ytbb-robust-classes"),
        NaturalShift("ytbb-pm10", "ytbb-pm10", k=PM_K_MAX, id_split="val-on-ytbb-robust-classes"),
    )

    def __init__(self, data_root: Path | None):
        self.data_root = None if data_root is None else Path(data_root)
        self._listings: dict[str, Listing] = {}

    def _listing(self, split: str) -> Listing:
        if split not in LOADERS and split not in ON_CLASSES:
            raise ValueError(f"unknown imagenet split {split!r}; known: {', '.join([*LOADERS, *ON_CLASSES])}")
        if self.data_root is None:
            raise DataMissingError(f"the imagenet benchmark reads its data from --data-root, which is not set "
                                   f"(split {split!r}; see harness/data/imagenet.py for the layouts)")
        if split not in self._listings:
            self._listings[split] = (val_on_classes(self._listing("val"), self._listing(ON_CLASSES[split]))
                                     if split in ON_CLASSES else LOADERS[split](self.data_root))
        return self._listings[split]

    def prompts(self) -> Prompts:
        """open_clip's IMAGENET_CLASSNAMES (sorted-wnid order, the labels' order) under OpenAI's 80 templates."""
        from open_clip import IMAGENET_CLASSNAMES

        return Prompts(tuple(IMAGENET_CLASSNAMES), openai_imagenet_templates(), "open_clip IMAGENET_CLASSNAMES",
                       "openai")

    def check(self, split: str) -> None:
        check_complete(self._listing(split))

    def load(self, split: str, n: int, cache: ArrayCache, preprocess: Preprocess) -> EvalData:
        return joined(self.stream(split, n, cache, preprocess))

    def stream(self, split: str, n: int, cache: ArrayCache, preprocess: Preprocess) -> Iterator[EvalData]:
        if preprocess.resize < preprocess.size:
            raise ValueError(f"preprocess resize {preprocess.resize} is smaller than the crop {preprocess.size}")
        return self._chunks(split, self._listing(split), n, cache, preprocess,
                            frames=split.startswith(("vid-", "ytbb-")))

    def load_perturbed(self, perturbation: Mapping[str, Any], n: int, cache: ArrayCache,
                       preprocess: Preprocess) -> EvalData | None:
        """A pre-rendered synthetic shift from disk, preferred (as its authors advise) over perturbing in memory,
        or None when it is absent: ImageNet-C for a corruption, whose 224 px crops are only resized to the model's
        input size, never re-cropped; Stylized-ImageNet for the transform `stylized`."""
        chunks = self.stream_perturbed(perturbation, n, cache, preprocess)
        return None if chunks is None else joined(chunks)

    def stream_perturbed(self, perturbation: Mapping[str, Any], n: int, cache: ArrayCache,
                         preprocess: Preprocess) -> Iterator[EvalData] | None:
        if self.data_root is None:
            return None
        corruption = perturbation.get("corruption")
        if corruption is not None:
            listing = load_imagenet_c(self.data_root, corruption["name"], corruption["severity"])
            split = f"imagenet-c/{corruption['name']}/{corruption['severity']}"
            preprocess = Preprocess(preprocess.size, preprocess.size, preprocess.interpolation)
        elif perturbation.get("transform") == "stylized":
            listing, split = load_stylized(self.data_root), "stylized-imagenet"
        else:
            return None
        return None if listing is None else self._chunks(split, listing, n, cache, preprocess, frames=False)

    def _chunks(self, split: str, listing: Listing, n: int, cache: ArrayCache, preprocess: Preprocess,
                frames: bool) -> Iterator[EvalData]:
        """The first `n` samples of `listing` that decode (balanced order), in pieces of PIECE_SAMPLES within data
        chunks of DATA_CHUNK_SAMPLES, each data chunk cached on its own (harness.stream). A chunk's entry records
        where in the order it stopped, so the next chunk's key (its start) is known without decoding; a split of
        one chunk keeps the key and hash it had before splits were streamed. On a miss a chunk's pieces are handed
        on as they decode and its entry is written once complete; on a hit they are views of the entry."""
        check_complete(listing)
        checksums = [path for path in [listing.folder / "SHA256SUMS"] if path.is_file()]
        base = {"kind": "imagenet-split", "version": LOADER_VERSION, "split": split, "n": n, "seed": DATA_SEED,
                "files": files_fingerprint(listing.folder, listing.files + checksums),
                "preprocess": preprocess.as_dict()}
        order = balanced_order(listing.samples)
        per_frame = frames and any(sample.frame_label_sets is not None for sample in order)
        size = DATA_CHUNK_SAMPLES
        n = min(n, len(order))
        record = {"benchmark": self.name, "split": split, "seed": DATA_SEED, "dataset_path": str(listing.folder),
                  "files_sha256": base["files"], "border_crop": listing.border}
        chunk = _ChunkPieces(record, None if listing.class_subset is None else
                             np.array(listing.class_subset, dtype=np.int64),
                             per_frame or any(len(sample.label_set) > 1 for sample in order), per_frame)
        decoding = Decoding(preprocess, listing.border, frames, per_frame)
        verified = []
        position = offset = 0
        while True:
            take = min(size, n - offset)
            key = base if n <= size else {**base, "chunk": {"start": position, "take": take}}
            arrays = cache.lookup(key, remember=n <= size, pixels=True)
            if arrays is None:
                if not verified:
                    verify_checksums(listing.folder)
                    verified.append(True)
                arrays = yield from chunk.decoded(decode_pieces(order[position:], take, PIECE_SAMPLES, decoding),
                                                  take, offset, lambda arrays, seconds, key=key: cache.store(
                                                      key, arrays, seconds, remember=n <= size, pixels=True))
            else:
                yield from chunk.pieces(arrays, offset)
            got = len(arrays["labels"])
            offset += got
            position += int(arrays["consumed"][0])
            if offset >= n or got < take or position >= len(order):
                return


@dataclasses.dataclass(frozen=True)
class _ChunkPieces:
    """How a data chunk of an image-folder split is handed on in pieces (harness.stream): every piece's provenance
    is `record` with its `n` and no unreadable files; the chunk's last piece carries the chunk's `sha256` and all
    its `unreadable_files` instead, so a chunk decoded now and one read from the cache give the same pieces."""

    record: dict[str, Any]
    class_subset: np.ndarray | None
    keep_sets: bool
    per_frame: bool

    def _piece(self, images: np.ndarray, label_sets: np.ndarray, offset: int) -> EvalData:
        """A piece of `images` and their padded label sets, from split index `offset`."""
        return EvalData(images, sample_labels(label_sets), {**self.record, "n": len(images), "unreadable_files": []},
                        self.class_subset, label_sets if self.keep_sets else None, offset)

    @staticmethod
    def _ending(piece: EvalData, chunk: Mapping[str, np.ndarray]) -> EvalData:
        """`piece` as the last of `chunk` (its arrays): with the chunk's hash and unreadable files."""
        return dataclasses.replace(piece, provenance={
            **piece.provenance, "unreadable_files": [str(p) for p in chunk["unreadable"]],
            "sha256": content_sha256(chunk["images"], chunk["labels"], chunk["label_sets"])})

    def pieces(self, chunk: Mapping[str, np.ndarray], offset: int) -> Iterator[EvalData]:
        """A cached chunk in pieces of PIECE_SAMPLES, views of its arrays (one, empty, for an empty chunk)."""
        got = len(chunk["labels"])
        start = 0
        for stop in [*range(PIECE_SAMPLES, got, PIECE_SAMPLES), got]:
            piece = self._piece(chunk["images"][start:stop], chunk["label_sets"][start:stop], offset + start)
            yield self._ending(piece, chunk) if stop == got else piece
            start = stop

    def decoded(self, pieces: Iterator[DecodedPiece], take: int, offset: int,
                store: Callable[[dict[str, np.ndarray], float], dict[str, np.ndarray]]) -> Iterator[EvalData]:
        """The chunk being decoded as `pieces`, handed on one piece behind (the last carries the chunk's hash),
        then stored with `store(arrays, seconds spent decoding)`; returns the chunk's arrays. Its images are
        written into one array of `take` samples as they come, and each piece handed on is a view of it. No lock
        is held meanwhile: two workers decoding the same chunk at once both hand it on, the entry stored first
        is kept, and the hash each records is that of the pixels it handed on."""
        images, sets, unreadable, consumed, held, seconds = None, [], [], 0, None, 0.0
        while True:
            started = time.perf_counter()
            decoded = next(pieces, None)
            seconds += time.perf_counter() - started
            if decoded is None:
                break
            unreadable += decoded.unreadable
            consumed = decoded.consumed
            if held is not None and not len(decoded.images):
                continue  # the samples ran out with unreadable ones only: the chunk ends at the held piece
            if images is None:
                images = np.empty((take, *decoded.images.shape[1:]), np.uint8)
            start, stop = len(sets), len(sets) + len(decoded.images)
            images[start:stop] = decoded.images
            if held is not None:
                yield held
            rows = images[start:stop]
            rows.flags.writeable = False  # written once: a piece's pixels never change after it is handed on
            held = self._piece(rows, padded_label_sets(decoded.label_sets, self.per_frame), offset + start)
            sets += decoded.label_sets
        label_sets = padded_label_sets(sets, self.per_frame)
        chunk = {"images": images[:len(sets)], "labels": sample_labels(label_sets), "label_sets": label_sets,
                 "unreadable": np.array(unreadable, dtype=str), "consumed": np.array([consumed], dtype=np.int64)}
        store(chunk, seconds)
        yield self._ending(held, chunk)
        return chunk
