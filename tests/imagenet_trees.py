"""Writers of miniature dataset trees in the real layouts of the `imagenet` benchmark (harness/data/imagenet.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = [f"n{i:08d}" for i in range(1000)]
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def write_image(path: Path, color=(120, 60, 30), size=(24, 18), mode="RGB", fmt="JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    image = image.convert(mode) if mode != "RGB" else image
    image.save(path, format=fmt, quality=95)
    return path


def manifest(folder: Path, count: int) -> None:
    (folder / "manifest.json").write_text(json.dumps({"expected_images": count}))


def class_tree(folder: Path, names, per_class=2, suffix=".JPEG"):
    """Class folders `names` with `per_class` solid-colour images each (colour by class position)."""
    count = 0
    for position, name in enumerate(names):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_image(folder / name / f"img_{i:03d}{suffix}", COLORS[position % len(COLORS)])
            count += 1
    return count


def objectnet_tree(root: Path) -> Path:
    """ObjectNet 1.0's layout with its four real mapping formats: two overlapping classes (one mapping to two
    ImageNet classes, one whose ImageNet name holds commas, as the real names do) and one that does not overlap.
    `imagenet_to_label_2012_v2` has 1000 lines (line i: the name of ImageNet 2012 id i) and
    `pytorch_to_imagenet_2012_id.json` maps each class index to an id by a fixed permutation, as the real files."""
    folder = root / "objectnet-1.0"
    mappings = folder / "mappings"
    mappings.mkdir(parents=True)
    index_to_id = {index: (index * 7 + 3) % 1000 for index in range(1000)}  # a permutation, as the real map is
    id_names = [f"placeholder class {i}" for i in range(1000)]
    id_names[index_to_id[409]], id_names[index_to_id[530]] = "analog clock", "digital clock"
    id_names[index_to_id[954]] = "banana, plantain-like fruit"
    (mappings / "imagenet_to_label_2012_v2").write_text("".join(f"{name}\n" for name in id_names))
    files = {"folder_to_objectnet_label.json": {"alarm_clock": "Alarm clock", "banana": "Banana", "sock": "Sock"},
             "objectnet_to_imagenet_1k.json": {"Alarm clock": "analog clock; digital clock",
                                               "Banana": "banana, plantain-like fruit"},
             "pytorch_to_imagenet_2012_id.json": {str(index): i for index, i in index_to_id.items()}}
    for name, content in files.items():
        (mappings / name).write_text(json.dumps(content))
    for position, name in enumerate(["alarm_clock", "banana", "sock"]):
        for i in range(2):
            path = folder / "images" / name / f"{i:04x}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.zeros((20, 20, 3), np.uint8)
            pixels[:] = COLORS[position + 1]
            pixels[:2, :] = pixels[-2:, :] = pixels[:, :2] = pixels[:, -2:] = (255, 0, 0)  # a 2-pixel red border
            Image.fromarray(pixels).save(path)
    manifest(folder, 6)
    return folder


def vid_robust_tree(root: Path) -> Path:
    """ImageNet-Vid-Robust in its release's format (metadata/ and misc/ files, `val/ILSVRC2015_val_<id>/` frames):

    - anchor A (video 1, frame 3) of VID class 0 (ImageNet 404 and 405) with six neighbours, frames 0-6, of which
      frame 5 is labelled VID class 1 (ImageNet 817) as well, as two real anchors' neighbours are;
    - anchor B (video 2, frame 0) of VID class 2 (ImageNet 11), two neighbours after it;
    - anchor C (video 3) of VID class 3, whose wnid maps to no ImageNet class: it is scored, and always wrong.

    Frame pixels: red = 10 * the frame's value (video 1: 0-6, video 2: 10-12, video 3: 20)."""
    folder = root / "imagenet-vid-robust"
    v1, v2, v3 = (f"val/ILSVRC2015_val_{i:08d}" for i in (1, 2, 3))
    frames = {f"{v1}/{i:06d}.JPEG": i for i in range(7)} | {f"{v2}/{i:06d}.JPEG": 10 + i for i in range(3)}
    frames[f"{v3}/000000.JPEG"] = 20
    for path, value in frames.items():
        write_image(folder / path, (value * 10, 100, 100))
    pmsets = {f"{v1}/000003.JPEG": [f"{v1}/{i:06d}.JPEG" for i in (0, 1, 2, 4, 5, 6)],
              f"{v2}/000000.JPEG": [f"{v2}/000001.JPEG", f"{v2}/000002.JPEG"], f"{v3}/000000.JPEG": []}
    labels = {path: [0] for path in frames if path.startswith(v1)} | {
        path: [2] for path in frames if path.startswith(v2)} | {f"{v3}/000000.JPEG": [3]}
    labels[f"{v1}/000005.JPEG"] = [0, 1]
    vid_classes = {"0": ["n02691156", "airplane"], "1": ["n02834778", "bicycle"], "2": ["n01503061", "bird"],
                   "3": ["n02419796", "antelope"]}
    imagenet_classes = {str(i): [WNIDS[i], f"class {i}"] for i in range(1000)}
    rev_wnid_map = {"n02691156": [WNIDS[404], WNIDS[405]], "n02834778": [WNIDS[817]], "n01503061": [WNIDS[11]],
                    "n02419796": []}
    wnid_map = {imagenet: vid for vid, imagenets in rev_wnid_map.items() for imagenet in imagenets}
    for name, content in [("metadata/pmsets.json", pmsets), ("metadata/labels.json", labels),
                          ("misc/imagenet_vid_class_index.json", vid_classes),
                          ("misc/rev_wnid_map.json", rev_wnid_map), ("misc/wnid_map.json", wnid_map),
                          ("misc/imagenet_class_index.json", imagenet_classes)]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content))
    return folder


YTBB_TAGS = ["good", "unsure", "bad", "person", "cow", "car", "none"]  # the anchor tool's names (real: 27)
PAIR_TAGS = ["similar", "dissimilar", "blur-increase", "bad-anchor"]


def ytbb_robust_tree(root: Path) -> Path:
    """YTBB-Robust in its release's format: frames `ytbb_videos/<ytid>_<ms>/frame-<n>.jpg`, metadata in the
    annotation tool's JSON and the anchors' CSV (values in the frames' red channel / 10):

    - anchor A `ab_c-d_1000/frame-995.jpg` (a ytid with an underscore; its key written as an absolute path), good,
      annotated person, CSV label 22 (car, swapped): neighbours frames 990-1005, across frame-999 -> frame-1000,
      kept when `similar`; frame 997 is `similar` but `blur-increase` and frame 1002 `dissimilar`: both dropped,
      frame 1010 lies 15 frames away: dropped;
    - anchor B `xy_2000/frame-5.jpg`, good, annotated cow (no ImageNet class): kept, always wrong;
    - dropped anchors: C `unsure` as well as good, D good but one of its pairs `bad-anchor`, E `bad`.
    """
    folder = root / "ytbb-robust"
    videos = folder / "ytbb_videos"
    a_frames = {f"ab_c-d_1000/frame-{n}.jpg": n % 100 for n in [*range(990, 1006), 1010]}
    others = {"xy_2000/frame-5.jpg": 50, "xy_2000/frame-6.jpg": 51, "cc_1/frame-1.jpg": 60, "dd_1/frame-1.jpg": 61,
              "dd_1/frame-2.jpg": 62, "ee_1/frame-1.jpg": 63}
    for path, value in (a_frames | others).items():
        write_image(videos / path, (value * 2, 100, 100))
    anchor = "ab_c-d_1000/frame-995.jpg"
    annotate = lambda key, tags, names: {"key": key, "labels": [names.index(t) for t in tags], "notes": ""}  # noqa
    anchors = [annotate(f"/data/ytbb/{anchor}", ["good", "person"], YTBB_TAGS),
               annotate("xy_2000/frame-5.jpg", ["good", "cow"], YTBB_TAGS),
               annotate("cc_1/frame-1.jpg", ["good", "unsure", "person"], YTBB_TAGS),
               annotate("dd_1/frame-1.jpg", ["good", "person"], YTBB_TAGS),
               annotate("ee_1/frame-1.jpg", ["bad", "person"], YTBB_TAGS)]
    pairs = [annotate(f"{anchor},{frame}", {997: ["similar", "blur-increase"], 1002: ["dissimilar"]}.get(
        int(frame.split("-")[-1][:-4]), ["similar"]), PAIR_TAGS) for frame in a_frames if frame != anchor]
    pairs += [annotate("xy_2000/frame-5.jpg,xy_2000/frame-6.jpg", ["similar"], PAIR_TAGS),
              annotate("dd_1/frame-1.jpg,dd_1/frame-2.jpg", ["similar", "bad-anchor"], PAIR_TAGS)]
    metadata = folder / "metadata"
    metadata.mkdir(parents=True)
    (metadata / "anchor_labels.json").write_text(json.dumps({"labels": YTBB_TAGS, "annotations": anchors}))
    (metadata / "pmk_labels.json").write_text(json.dumps({"labels": PAIR_TAGS, "annotations": pairs}))
    (metadata / "ytbb_class_index.json").write_text(json.dumps({"0": "person", "6": "cow", "22": "none",
                                                                 "23": "car"}))
    (metadata / "rev_class_idx_map.json").write_text(json.dumps({"0": [11], "23": [404, 405]}))
    (metadata / "ytbb_robustness_test_anchors_full.csv").write_bytes(
        b"ytid,time_ms,label\r\nab_c-d,1000,22\r\nxy,2000,6\r\ncc,1,0\r\n")
    return folder


def natural_shift_trees(root: Path) -> None:
    """Under `root` (a --data-root), a miniature of every dataset the `imagenet` benchmark's natural shifts read,
    with the manifests the loaders require: ImageNetV2, -Sketch, -R and -A hold two classes of one image each;
    ObjectNet, ImageNet-Vid-Robust and YTBB-Robust are objectnet_tree's, vid_robust_tree's and
    ytbb_robust_tree's; `imagenet/val` holds the 1000 wnid folders that give the class list, with one image in
    each class of the shifts' class subsets (for their `val-on-<shift>-classes` ID accuracy)."""
    for wnid in WNIDS:
        (root / "imagenet" / "val" / wnid).mkdir(parents=True)
    on_classes = (1, 2, 3, 4, 11, 404, 405, 409, 530, 817, 954)  # the classes of the shifts' subsets below
    for index in on_classes:
        write_image(root / "imagenet" / "val" / WNIDS[index] / "img_000.JPEG", COLORS[index % len(COLORS)])
    manifest(root / "imagenet", len(on_classes))
    for dataset, classes, images in [("imagenetv2-matched-frequency", ["0", "999"], ""),
                                     ("imagenet-sketch", WNIDS[:2], "sketch"),
                                     ("imagenet-r", [WNIDS[1], WNIDS[2]], ""),
                                     ("imagenet-a", [WNIDS[3], WNIDS[4]], "")]:
        manifest(root / dataset, class_tree(root / dataset / images, classes, per_class=1))
    objectnet_tree(root)
    vid_robust_tree(root)
    ytbb_robust_tree(root)
