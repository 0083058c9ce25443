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


def video_tree(root: Path, name: str, kind: str) -> Path:
    """Two anchors: one in the middle of 7 frames (classes 0 and 1), one at the start of 3 frames (class 2);
    a third anchor whose class maps to no ImageNet class is dropped."""
    folder = root / name
    frames = {f"frames/v1/{i:06d}.JPEG": i for i in range(7)} | {f"frames/v2/{i:06d}.JPEG": 10 + i for i in range(3)}
    frames["frames/v3/000000.JPEG"] = 20
    for path, value in frames.items():
        write_image(folder / path, (value * 10, 100, 100))
    pmsets = {"frames/v1/000003.JPEG": [f"frames/v1/{i:06d}.JPEG" for i in (0, 1, 2, 4, 5, 6)],
              "frames/v2/000000.JPEG": ["frames/v2/000001.JPEG", "frames/v2/000002.JPEG"],
              "frames/v3/000000.JPEG": []}
    labels = {"frames/v1/000003.JPEG": [0, 1], "frames/v2/000000.JPEG": [2], "frames/v3/000000.JPEG": [9]}
    to_kind = {"404": 0, "405": 0, "817": 1, "11": 2}
    (folder / "metadata").mkdir()
    (folder / "misc").mkdir()
    (folder / "metadata" / "pmsets.json").write_text(json.dumps(pmsets))
    (folder / "metadata" / "labels.json").write_text(json.dumps(labels))
    (folder / "misc" / f"imagenet_class_idx_to_{kind}_class_idx.json").write_text(json.dumps(to_kind))
    return folder


def natural_shift_trees(root: Path) -> None:
    """Under `root` (a --data-root), a miniature of every dataset the `imagenet` benchmark's natural shifts read,
    with the manifests the loaders require: ImageNetV2, -Sketch, -R and -A hold two classes of one image each,
    ObjectNet and the two video sets are objectnet_tree's and video_tree's; `imagenet/val` holds only the 1000
    (empty) wnid folders that give the class list."""
    for wnid in WNIDS:
        (root / "imagenet" / "val" / wnid).mkdir(parents=True)
    for dataset, classes, images in [("imagenetv2-matched-frequency", ["0", "999"], ""),
                                     ("imagenet-sketch", WNIDS[:2], "sketch"),
                                     ("imagenet-r", [WNIDS[1], WNIDS[2]], ""),
                                     ("imagenet-a", [WNIDS[3], WNIDS[4]], "")]:
        manifest(root / dataset, class_tree(root / dataset / images, classes, per_class=1))
    objectnet_tree(root)
    video_tree(root, "imagenet-vid-robust", "vid")
    video_tree(root, "ytbb-robust", "ytbb")
