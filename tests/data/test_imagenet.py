"""The `imagenet` benchmark's loaders on generated miniature trees with the real layouts, quirky files included."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cache import ArrayCache
from harness.data import DataMalformedError, DataMissingError, EvalData, Preprocess, get_benchmark
from harness.data import folders
from harness.data.folders import resize_crop
from harness.files import sha256_file
from harness.metrics import pm_k_correct
from imagenet_trees import (WNIDS, class_tree, manifest, objectnet_tree, vid_robust_tree, write_image,
                            ytbb_robust_tree)

PRE = Preprocess(size=8, resize=10, interpolation="bilinear")


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def cache(tmp_path):
    return ArrayCache(tmp_path / "cache")


def val_tree(root: Path, with_manifest=True) -> int:
    """ImageNet val: 1000 wnid folders (class list), images in the first 3, plus every quirk in class 0."""
    val = root / "imagenet" / "val"
    for wnid in WNIDS:
        (val / wnid).mkdir(parents=True, exist_ok=True)
    count = class_tree(val, WNIDS[:3])
    quirks = val / WNIDS[0]
    write_image(quirks / "grey.JPEG", (90, 90, 90), mode="L")
    write_image(quirks / "cmyk.JPEG", (10, 200, 10), mode="CMYK")
    write_image(quirks / "rgba.png", (10, 10, 200), mode="RGBA", fmt="PNG")
    write_image(quirks / "png_named.JPEG", (200, 10, 200), fmt="PNG")
    good = write_image(quirks / "truncated.JPEG", (1, 2, 3), size=(64, 64)).read_bytes()
    (quirks / "truncated.JPEG").write_bytes(good[:len(good) // 2])
    (quirks / "empty.JPEG").write_bytes(b"")
    (quirks / ".DS_Store").write_bytes(b"\0\1junk")
    (val.parent / "README.txt").write_text("not an image")
    (quirks / "notes.txt").write_text("not an image")
    count += 6
    if with_manifest:
        manifest(root / "imagenet", count)
    return count


def load(root, split, cache, n=100, preprocess=PRE) -> EvalData:
    return get_benchmark("imagenet", root).load(split, n, cache, preprocess)


def test_registered_with_its_settings():
    benchmark = get_benchmark("imagenet", None)
    assert benchmark.clean_split == "val"
    names = [shift.name for shift in benchmark.natural_shifts]
    assert names == ["v2", "sketch", "rendition", "imagenet-a", "objectnet", "vid-pm0", "vid-pm10", "ytbb-pm0",
                     "ytbb-pm10"]
    assert not any("adversarial" in name for name in names)
    assert {shift.name: shift.k for shift in benchmark.natural_shifts}["vid-pm10"] == 10


@pytest.mark.parametrize("split, folder, source", [
    ("val", "imagenet", "image-net.org"), ("v2", "imagenetv2-matched-frequency", "ImageNetV2"),
    ("sketch", "imagenet-sketch", "ImageNet-Sketch"), ("rendition", "imagenet-r", "imagenet-r"),
    ("imagenet-a", "imagenet-a", "natural-adv-examples"), ("objectnet", "objectnet-1.0", "objectnet.dev"),
    ("vid-pm0", "imagenet-vid-robust", "natural-perturbations-video"), ("ytbb-pm10", "ytbb-robust", "video"),
])
def test_missing_dataset_names_path_and_source(root, cache, split, folder, source):
    root.mkdir()
    with pytest.raises(DataMissingError, match=source) as error:
        load(root, split, cache)
    assert str(root / folder) in str(error.value)


def test_no_data_root_is_data_missing(cache):
    with pytest.raises(DataMissingError, match="--data-root"):
        get_benchmark("imagenet", None).load("val", 10, cache, PRE)


def test_partial_dataset_detected_unless_manifest_says_so(root, cache):
    count = val_tree(root, with_manifest=False)
    with pytest.raises(DataMalformedError, match=f"partial: found {count} of 50000"):
        load(root, "val", cache)
    manifest(root / "imagenet", count + 1)
    with pytest.raises(DataMalformedError, match=f"partial: found {count} of {count + 1}"):
        load(root, "val", cache)
    manifest(root / "imagenet", count)
    assert len(load(root, "val", cache).labels) > 0


def test_val_decodes_quirky_files_and_records_unreadable_ones(root, cache):
    val_tree(root)
    data = load(root, "val", cache)
    assert data.images.dtype == np.uint8 and data.images.shape == (10, 8, 8, 3)
    assert data.labels.dtype == np.int64 and sorted(data.labels.tolist()) == [0] * 6 + [1, 1, 2, 2]
    assert data.class_subset is None and data.label_sets is None
    unreadable = sorted(Path(p).name for p in data.provenance["unreadable_files"])
    assert unreadable == ["empty.JPEG", "truncated.JPEG"]
    colours = {tuple(image[4, 4]) for image in data.images[data.labels == 0]}
    # greyscale, CMYK, RGBA and a PNG named .JPEG all decode to RGB of about their colour
    for expected in [(90, 90, 90), (10, 200, 10), (10, 10, 200), (200, 10, 200)]:
        assert any(np.abs(np.subtract(c, expected, dtype=int)).max() <= 12 for c in colours), expected


def test_selection_is_class_balanced_and_deterministic(root, cache, tmp_path):
    val_tree(root)
    first = load(root, "val", cache, n=3)
    assert sorted(first.labels.tolist()) == [0, 1, 2]
    again = load(root, "val", ArrayCache(tmp_path / "other-cache"), n=3)
    assert np.array_equal(first.images, again.images) and first.provenance["sha256"] == again.provenance["sha256"]


def test_decoded_arrays_come_from_the_cache_keyed_on_the_files(root, cache, monkeypatch):
    val_tree(root)
    first = load(root, "val", cache)
    monkeypatch.setattr(folders, "decode", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    assert load(root, "val", cache).provenance == first.provenance
    write_image(root / "imagenet" / "val" / WNIDS[1] / "img_000.JPEG", (1, 1, 1), size=(30, 18))
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        load(root, "val", cache)


def test_resize_and_crop_match_torchvision():
    from torchvision import transforms

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    for interpolation, mode in [("bicubic", transforms.InterpolationMode.BICUBIC),
                                ("bilinear", transforms.InterpolationMode.BILINEAR)]:
        reference = transforms.Compose([transforms.Resize(20, mode), transforms.CenterCrop(16)])(image)
        ours = resize_crop(image, Preprocess(16, 20, interpolation))
        assert np.array_equal(ours, np.asarray(reference))


def test_checksum_manifest_is_verified(root, cache):
    val_tree(root)
    folder = root / "imagenet"
    target = folder / "val" / WNIDS[1] / "img_000.JPEG"
    (folder / "SHA256SUMS").write_text(f"{sha256_file(target)}  val/{WNIDS[1]}/img_000.JPEG\n")
    load(root, "val", cache)
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  val/{WNIDS[1]}/img_000.JPEG\n")
    with pytest.raises(DataMalformedError, match="SHA256SUMS"):
        load(root, "val", cache)


def test_v2_folders_are_class_indices(root, cache):
    folder = root / "imagenetv2-matched-frequency"
    count = class_tree(folder, ["0", "7", "999"], suffix=".jpeg")
    manifest(folder, count)
    data = load(root, "v2", cache)
    assert sorted(set(data.labels.tolist())) == [0, 7, 999]


def test_sketch_gets_its_class_list_from_its_own_folders(root, cache):
    sketch = root / "imagenet-sketch" / "sketch"
    for wnid in WNIDS:
        (sketch / wnid).mkdir(parents=True)
    count = class_tree(sketch, [WNIDS[5], WNIDS[998]], suffix=".JPEG")
    manifest(root / "imagenet-sketch", count)
    assert sorted(set(load(root, "sketch", cache).labels.tolist())) == [5, 998]


@pytest.mark.parametrize("split, folder", [("rendition", "imagenet-r"), ("imagenet-a", "imagenet-a")])
def test_rendition_and_a_set_the_class_subset_of_their_folders(root, cache, split, folder):
    val_tree(root)
    present = [WNIDS[3], WNIDS[42], WNIDS[700]]
    count = class_tree(root / folder, present, suffix=".jpg")
    (root / folder / "README.txt").write_text("stray")
    manifest(root / folder, count)
    data = load(root, split, cache)
    assert data.class_subset.tolist() == [3, 42, 700]
    assert sorted(set(data.labels.tolist())) == [3, 42, 700]  # 1000-way indices
    manifest(root / folder, 30_000)
    with pytest.raises(DataMalformedError, match="partial"):
        load(root, split, cache)


def test_rendition_needs_the_imagenet_class_list(root, cache):
    class_tree(root / "imagenet-r", [WNIDS[3]])
    with pytest.raises(DataMissingError, match="1000 wnid folders"):
        load(root, "rendition", cache)


def test_objectnet_maps_classes_to_imagenet_sets_and_crops_the_border(root, cache):
    objectnet_tree(root)
    data = load(root, "objectnet", cache, preprocess=Preprocess(18, 18, "bilinear"))
    assert len(data.labels) == 4  # "sock" does not overlap ImageNet
    assert data.class_subset.tolist() == [409, 530, 954]
    clocks = data.labels == 409
    assert clocks.sum() == 2 and data.label_sets[clocks].tolist() == [[409, 530]] * 2
    assert data.label_sets[~clocks].tolist() == [[954, -1]] * 2
    # the red border is gone: 20 px minus 2 border px a side, resized to 18 px, shows the fill colour on every edge
    assert (data.images[:, [0, -1], :, 0] < 100).all() and (data.images[:, :, [0, -1], 0] < 100).all()
    assert data.provenance["border_crop"] == 2
    # a prediction anywhere in the set counts
    assert data.correct(np.where(clocks, 530, 954)).all()
    assert not data.correct(np.where(clocks, 954, 409)).any()


def test_vid_robust_sequences_are_placed_by_frame_number_and_each_frame_judged_on_its_own_labels(root, cache):
    vid_robust_tree(root)
    anchors = load(root, "vid-pm0", cache)
    data = load(root, "vid-pm10", cache)
    assert anchors.images.shape == (3, 1, 8, 8, 3) and data.images.shape == (3, 21, 8, 8, 3)
    assert data.class_subset.tolist() == [11, 404, 405, 817]
    a, b, c = (np.flatnonzero(data.labels == label)[0] for label in (404, 11, -1))  # C maps to no ImageNet class
    red = data.images[..., 4, 4, 0].astype(int)  # frame identity: red channel = 10 * frame value
    anchor = lambda i: red[i][10]  # noqa: E731
    expected_a = [anchor(a)] * 7 + [0, 10, 20, 30, 40, 50, 60] + [anchor(a)] * 7  # offsets -3..+3, anchor elsewhere
    assert np.abs(red[a] - expected_a).max() <= 3 and anchor(a) == pytest.approx(30, abs=3)
    assert np.abs(red[b][10:13] - [100, 110, 120]).max() <= 3 and np.abs(red[b][:10] - 100).max() <= 3
    assert np.array_equal(anchors.images[:, 0], data.images[:, 10])
    # frame 5 of A (offset +2) is also labelled VID class 1 (ImageNet 817), the others only class 0 (404, 405)
    assert data.label_sets.shape[:2] == (3, 21)
    assert [i for i in data.label_sets[a, 12] if i >= 0] == [404, 405, 817]
    assert [i for i in data.label_sets[a, 11] if i >= 0] == [404, 405]
    predictions = np.full((3, 21), 404)
    predictions[b] = 11
    predictions[a, 12] = 817  # right for frame 5 only: each frame is judged on its own entry
    correct = data.correct(predictions)
    assert correct[a].all() and correct[b].all() and not correct[c].any()
    predictions[a, 11] = 817  # wrong for frame 4: A loses pm-1 and beyond, keeps pm-0
    frame_correct = data.correct(predictions)
    assert pm_k_correct(frame_correct, 0).tolist() == [i != c for i in range(3)]
    assert pm_k_correct(frame_correct, 1)[a] == False  # noqa: E712


def test_pm_k_matches_the_testbeds_rule_on_planted_predictions(root, cache):
    """pm-0: the anchor is right; pm-10: the anchor and every listed neighbour are right, each frame judged on its
    own labels (ImageNet-Vid-Robust), as the testbed scores; an unmapped anchor is wrong under both."""
    folder = vid_robust_tree(root)
    data = load(root, "vid-pm10", cache)
    pmsets = json.loads((folder / "metadata" / "pmsets.json").read_text())
    labels = json.loads((folder / "metadata" / "labels.json").read_text())
    to_imagenet = {0: {404, 405}, 1: {817}, 2: {11}, 3: set()}
    value_of_anchor = {3: "val/ILSVRC2015_val_00000001/000003.JPEG", 10: "val/ILSVRC2015_val_00000002/000000.JPEG",
                       20: "val/ILSVRC2015_val_00000003/000000.JPEG"}  # the anchor frame's red / 10
    rows = {value_of_anchor[int(round(data.images[i, 10, 4, 4, 0] / 10))]: i for i in range(len(data.labels))}
    rng = np.random.default_rng(0)
    for _ in range(50):
        guess = {path: int(rng.choice([11, 404, 405, 817, 0])) for a in pmsets for path in [a, *pmsets[a]]}
        right = {path: guess[path] in set().union(*(to_imagenet[c] for c in labels[path])) for path in guess}
        predictions = np.zeros((len(data.labels), 21), int)
        for a, i in rows.items():
            by_offset = {int(Path(p).stem) - int(Path(a).stem): p for p in pmsets[a]}
            predictions[i] = [guess[by_offset.get(offset, a)] for offset in range(-10, 11)]
        frame_correct = data.correct(predictions)
        for a, i in rows.items():
            assert pm_k_correct(frame_correct, 0)[i] == right[a]
            assert pm_k_correct(frame_correct, 10)[i] == (right[a] and all(right[p] for p in pmsets[a]))


def test_ytbb_robust_keeps_good_anchors_and_similar_neighbours_across_frame_999(root, cache):
    ytbb_robust_tree(root)
    data = load(root, "ytbb-pm10", cache)
    assert data.images.shape == (2, 21, 8, 8, 3)  # A and B; C (unsure), D (bad-anchor pair) and E (bad) dropped
    assert data.class_subset.tolist() == [11, 404, 405]
    a, b = np.flatnonzero(data.labels == 11)[0], np.flatnonzero(data.labels == -1)[0]
    assert data.label_sets[a].tolist() == [11, 404, 405]  # person, and car from the CSV's swapped 22
    red = data.images[..., 4, 4, 0].astype(int) // 2  # frame identity: red channel = 2 * (frame number % 100)
    kept = {990, 991, 992, 993, 994, 996, 998, 999, 1000, 1001, 1003, 1004, 1005}  # not 997, 1002, 1010
    expected = [n % 100 if n in kept else 95 for n in range(985, 1006)]
    assert np.abs(red[a] - expected).max() <= 2  # both sides of frame-999 -> frame-1000, placed by number
    predictions = np.full((2, 21), 404)
    frame_correct = data.correct(predictions)
    assert frame_correct[a].all() and not frame_correct[b].any()  # every frame judged on the anchor's classes
    assert pm_k_correct(frame_correct, 10).tolist() == [i == a for i in range(2)]


def test_ytbb_robust_with_a_broken_annotation_file_is_malformed(root, cache):
    folder = ytbb_robust_tree(root)
    (folder / "metadata" / "pmk_labels.json").write_text(json.dumps([{"key": "x"}]))
    with pytest.raises(DataMalformedError, match="pmk_labels.json: not the annotation tool's format"):
        load(root, "ytbb-pm0", cache)
    (folder / "metadata" / "pmk_labels.json").unlink()
    with pytest.raises(DataMalformedError, match="metadata file missing"):
        load(root, "ytbb-pm0", cache)


def test_video_frames_missing_is_partial(root, cache):
    folder = vid_robust_tree(root)
    (folder / "val" / "ILSVRC2015_val_00000001" / "000006.JPEG").unlink()
    with pytest.raises(DataMalformedError, match="partial: found 10 of 11"):
        load(root, "vid-pm10", cache)


@pytest.mark.parametrize("removed", ["metadata/labels.json", "misc/rev_wnid_map.json", "misc/wnid_map.json"])
def test_a_vid_robust_release_without_a_metadata_file_is_malformed(root, cache, removed):
    folder = vid_robust_tree(root)
    (folder / removed).unlink()
    with pytest.raises(DataMalformedError, match=str(folder / removed)):
        load(root, "vid-pm0", cache)


def test_eval_data_label_sets_must_hold_the_label():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="label_sets"):
        EvalData(images, np.array([1, 2]), {}, label_sets=np.array([[1, 3], [4, -1]]))
    data = EvalData(images, np.array([1, 2]), {})
    assert data.correct(np.array([1, 3])).tolist() == [True, False]
    assert data.correct(np.array([[1, 1], [2, 0]])).tolist() == [[True, True], [True, False]]


def test_objectnet_mapping_to_unknown_imagenet_names_is_reported(root, cache):
    folder = objectnet_tree(root)
    mapping = folder / "mappings" / "objectnet_to_imagenet_1k.json"
    mapping.write_text(json.dumps({"Banana": "plantain"}))
    with pytest.raises(DataMalformedError, match="plantain.*no line of imagenet_to_label_2012_v2"):
        load(root, "objectnet", cache)


@pytest.mark.parametrize("damage, message", [
    ("imagenet_to_label_2012_v2", "metadata file missing from the dataset folder"),
    ("folder_to_objectnet_label.json", "metadata file missing from the dataset folder"),
    ("truncated-names", "must hold 1000 class names"),
    ("not-json", "not a JSON file"),
])
def test_a_present_objectnet_with_broken_mappings_is_malformed_not_missing(root, cache, damage, message):
    mappings = objectnet_tree(root) / "mappings"
    if damage == "truncated-names":
        names = (mappings / "imagenet_to_label_2012_v2").read_text().splitlines()
        (mappings / "imagenet_to_label_2012_v2").write_text("\n".join(names[:999]) + "\n")
    elif damage == "not-json":
        (mappings / "pytorch_to_imagenet_2012_id.json").write_text("{")
    else:
        (mappings / damage).unlink()
    with pytest.raises(DataMalformedError, match=message) as error:
        load(root, "objectnet", cache)
    assert not isinstance(error.value, DataMissingError) and str(mappings) in str(error.value)


def test_imagenet_c_is_read_from_disk_when_present(root, cache):
    folder = root / "imagenet-c" / "fog" / "3"
    for wnid in WNIDS:
        (folder / wnid).mkdir(parents=True, exist_ok=True)
    manifest(folder, class_tree(folder, WNIDS[:2], per_class=2))
    benchmark = get_benchmark("imagenet", root)
    data = benchmark.load_perturbed({"corruption": {"name": "fog", "severity": 3}}, 100, cache, PRE)
    assert data.images.shape == (4, PRE.size, PRE.size, 3)
    assert sorted(data.labels.tolist()) == [0, 0, 1, 1]
    assert data.provenance["dataset_path"] == str(folder)
    fog = {"corruption": {"name": "fog", "severity": 3}}
    assert benchmark.load_perturbed({"corruption": {"name": "fog", "severity": 4}}, 100, cache, PRE) is None  # absent
    assert get_benchmark("imagenet", None).load_perturbed(fog, 100, cache, PRE) is None


def test_stylized_imagenet_is_read_from_disk_when_present(root, cache):
    benchmark = get_benchmark("imagenet", root)
    assert benchmark.load_perturbed({"transform": "stylized"}, 100, cache, PRE) is None
    folder = root / "stylized-imagenet"
    for wnid in WNIDS:
        (folder / "val" / wnid).mkdir(parents=True, exist_ok=True)
    manifest(folder, class_tree(folder / "val", WNIDS[:2], per_class=1))
    data = benchmark.load_perturbed({"transform": "stylized"}, 100, cache, PRE)
    assert sorted(data.labels.tolist()) == [0, 1] and data.images.shape[1:] == (PRE.size, PRE.size, 3)
    assert benchmark.load_perturbed({"transform": "greyscale"}, 100, cache, PRE) is None


REFERENCE_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "datasets"


@pytest.mark.skipif(not (REFERENCE_DATASETS / "objectnet").is_dir(),
                    reason="../shared/reference/datasets is not beside this checkout")
def test_objectnet_reads_the_real_mapping_files(root, cache):
    """The four mapping files of the real release (copied into a temporary tree, with one image per folder)."""
    folder = root / "objectnet-1.0"
    shutil.copytree(REFERENCE_DATASETS / "objectnet", folder / "mappings")
    folders = json.loads((folder / "mappings" / "folder_to_objectnet_label.json").read_text())
    for name in folders:
        write_image(folder / "images" / name / "0.png", (10, 20, 30), size=(12, 12))
    manifest(folder, len(folders))
    data = load(root, "objectnet", cache, n=1000, preprocess=Preprocess(8, 8, "bilinear"))
    assert len(folders) == 313 and len(data.labels) == 113  # one image in each folder that overlaps ImageNet
    label_sets = [tuple(i for i in row if i >= 0) for row in data.label_sets.tolist()]
    assert (409, 530) in label_sets and (954,) in label_sets  # alarm clock: analog and digital clock; banana
    assert set(data.class_subset.tolist()) == {i for row in data.label_sets.tolist() for i in row if i >= 0}


@pytest.mark.skipif(not (REFERENCE_DATASETS / "ytbb-robust").is_dir(),
                    reason="../shared/reference/datasets is not beside this checkout")
def test_ytbb_robust_reads_the_real_annotations(root, cache):
    """The real anchor annotations, CSV and class maps (pmk_labels.json, absent from the reference, left empty):
    2,169 good anchors are kept, 78 of them with no ImageNet class, which count as wrong."""
    folder = root / "ytbb-robust"
    (folder / "metadata").mkdir(parents=True)
    for name in ("anchor_labels.json", "ytbb_class_index.json", "rev_class_idx_map.json",
                 "ytbb_robustness_test_anchors_full.csv"):
        shutil.copy(REFERENCE_DATASETS / "ytbb-robust" / name, folder / "metadata" / name)
    (folder / "metadata" / "pmk_labels.json").write_text(json.dumps({"labels": ["similar"], "annotations": []}))
    annotations = json.loads((folder / "metadata" / "anchor_labels.json").read_text())["annotations"]
    for entry in annotations:
        write_image(folder / "ytbb_videos" / "/".join(entry["key"].split("/")[-2:]), (1, 2, 3), size=(4, 4))
    data = load(root, "ytbb-pm0", cache, n=5000, preprocess=Preprocess(4, 4, "bilinear"))
    assert len(data.labels) == 2169 and (data.labels == -1).sum() == 78


def test_val_on_a_shifts_classes_is_val_restricted_to_them(root, cache):
    from imagenet_trees import natural_shift_trees

    natural_shift_trees(root)
    benchmark = get_benchmark("imagenet", root)
    shifts = {shift.name: shift for shift in benchmark.natural_shifts}
    assert shifts["rendition"].id_split == "val-on-imagenet-r-classes" and shifts["v2"].id_split is None
    for shift, classes in [("rendition", [1, 2]), ("objectnet", [409, 530, 954]), ("vid-pm10", [11, 404, 405, 817]),
                           ("ytbb-pm0", [11, 404, 405])]:
        data = benchmark.load(shifts[shift].id_split, 100, cache, PRE)
        assert sorted(data.labels.tolist()) == classes and data.class_subset.tolist() == classes
    (root / "imagenet" / "val" / WNIDS[404] / "img_000.JPEG").unlink()
    with pytest.raises(DataMalformedError, match="partial"):
        get_benchmark("imagenet", root).check("val-on-vid-robust-classes")


def test_an_instance_lists_each_folder_once_and_a_new_instance_lists_afresh(root, cache, monkeypatch):
    """A shift case is checked (its split and val on its classes) before its model loads, then streamed: one
    listing of each class folder in all, val's shared by every val-on-*-classes split."""
    from imagenet_trees import natural_shift_trees

    natural_shift_trees(root)
    import harness.data.imagenet

    listed, image_files = [], folders.image_files
    for module in (folders, harness.data.imagenet):  # folder_listing's and ObjectNet's loader's
        monkeypatch.setattr(module, "image_files", lambda folder: listed.append(folder) or image_files(folder))
    benchmark = get_benchmark("imagenet", root)
    for split in ("rendition", "val-on-imagenet-r-classes", "objectnet", "val-on-objectnet-classes"):
        benchmark.check(split)
        assert benchmark.load(split, 100, cache, PRE).labels.size > 0
    assert listed and len(listed) == len(set(listed))
    assert {root / "imagenet" / "val" / WNIDS[1], root / "imagenet-r" / WNIDS[1]} <= set(listed)
    assert any(folder.is_relative_to(root / "objectnet-1.0") for folder in listed)
    (root / "imagenet" / "val" / WNIDS[1] / "img_000.JPEG").unlink()
    benchmark.check("val")
    with pytest.raises(DataMalformedError, match="partial"):
        get_benchmark("imagenet", root).check("val")


def test_ytbb_pm_k_matches_the_testbeds_rule_on_planted_predictions(root, cache):
    """YTBB-Robust: pm-0 the anchor right, pm-10 the anchor and every kept neighbour right, all judged on the
    anchor's classes; the unmapped anchor is wrong under both."""
    ytbb_robust_tree(root)
    data = load(root, "ytbb-pm10", cache)
    kept = {"ab_c-d_1000/frame-995.jpg": [990, 991, 992, 993, 994, 996, 998, 999, 1000, 1001, 1003, 1004, 1005],
            "xy_2000/frame-5.jpg": [6]}
    classes = {"ab_c-d_1000/frame-995.jpg": {11, 404, 405}, "xy_2000/frame-5.jpg": set()}
    rows = {"ab_c-d_1000/frame-995.jpg": int(np.flatnonzero(data.labels == 11)[0]),
            "xy_2000/frame-5.jpg": int(np.flatnonzero(data.labels == -1)[0])}
    rng = np.random.default_rng(1)
    for _ in range(50):
        predictions = np.zeros((2, 21), int)
        expected = {}
        for anchor, i in rows.items():
            start = frame_number_of(anchor)
            guess = {offset: int(rng.choice([11, 404, 405, 817])) for offset in range(-10, 11)}
            kept_offsets = {n - start for n in kept[anchor]}
            predictions[i] = [guess[o] if o in kept_offsets or o == 0 else guess[0] for o in range(-10, 11)]
            right = lambda o: guess[o] in classes[anchor]  # noqa: E731
            expected[i] = (right(0), right(0) and all(right(o) for o in kept_offsets))
        frame_correct = data.correct(predictions)
        for i, (pm0, pm10) in expected.items():
            assert (pm_k_correct(frame_correct, 0)[i], pm_k_correct(frame_correct, 10)[i]) == (pm0, pm10)


def frame_number_of(key: str) -> int:
    return int(key.split("-")[-1].split(".")[0])


@pytest.mark.parametrize("split, tree", [("val", val_tree), ("objectnet", objectnet_tree),
                                         ("vid-pm10", vid_robust_tree)])
def test_a_split_streamed_in_chunks_is_the_split_loaded_whole(root, tmp_path, monkeypatch, split, tree):
    """Chunks of 2 samples, unreadable files and label sets of several widths included: the same samples, labels
    and label sets in the same order; each chunk cached on its own and read back warm without decoding."""
    import harness.data.imagenet
    import harness.stream
    from harness.stream import HASH_LIST, joined

    tree(root)
    benchmark = get_benchmark("imagenet", root)
    whole = benchmark.load(split, 100, ArrayCache(tmp_path / "whole"), PRE)
    monkeypatch.setattr(harness.stream, "DATA_CHUNK_SAMPLES", 2)
    monkeypatch.setattr(harness.data.imagenet, "DATA_CHUNK_SAMPLES", 2)
    cache = ArrayCache(tmp_path / "streamed")
    chunks = list(benchmark.stream(split, 100, cache, PRE))
    assert len(chunks) > 1 and all(len(chunk.labels) <= 2 for chunk in chunks)
    assert [chunk.offset for chunk in chunks] == list(np.cumsum([0] + [len(c.labels) for c in chunks[:-1]]))
    streamed = joined(chunks)
    assert np.array_equal(streamed.images, whole.images) and np.array_equal(streamed.labels, whole.labels)
    assert (streamed.label_sets is None) == (whole.label_sets is None)
    if whole.label_sets is not None:
        assert np.array_equal(streamed.label_sets, whole.label_sets)
    assert sorted(streamed.provenance["unreadable_files"]) == sorted(whole.provenance["unreadable_files"])
    assert streamed.provenance["n"] == whole.provenance["n"]
    assert streamed.provenance["sha256"].startswith(HASH_LIST)
    assert not cache._memory  # chunks of a streamed split are read once per case, not kept
    monkeypatch.setattr(folders, "decode", lambda *args: pytest.fail("a warm stream decoded an image"))
    again = joined(get_benchmark("imagenet", root).stream(split, 100, ArrayCache(tmp_path / "streamed"), PRE))
    assert np.array_equal(again.images, whole.images) and again.provenance == streamed.provenance


@pytest.mark.parametrize("split, tree, chunk, piece", [("val", val_tree, 5, 2), ("vid-pm10", vid_robust_tree, 2, 1)])
def test_a_chunk_is_handed_on_in_pieces_the_same_decoded_or_cached(root, tmp_path, monkeypatch, split, tree, chunk,
                                                                   piece):
    """Chunks in pieces: only each chunk's last piece carries the chunk's hash (that of the chunk as a whole)
    and its unreadable files; a warm stream gives the same pieces; the first piece comes before its chunk is
    decoded."""
    import harness.data.imagenet
    import harness.stream
    from harness.data.base import content_sha256
    from harness.stream import data_blocks, ends_chunk, joined

    tree(root)
    for module in (harness.stream, harness.data.imagenet):
        monkeypatch.setattr(module, "DATA_CHUNK_SAMPLES", chunk)
    monkeypatch.setattr(harness.data.imagenet, "PIECE_SAMPLES", piece)
    benchmark = get_benchmark("imagenet", root)
    decoded, original = [], folders.decode
    monkeypatch.setattr(folders, "decode", lambda *args: decoded.append(1) or original(*args))
    stream = benchmark.stream(split, 100, ArrayCache(tmp_path / "cache"), PRE)
    first = next(stream)
    frames = 1 if first.images.ndim == 4 else first.images.shape[1]
    assert len(first.labels) == piece and not ends_chunk(first)
    if chunk > 2 * piece:  # handed on one piece behind, the first before the chunk is decoded
        assert len(decoded) < chunk * frames
    cold = [first, *stream]
    assert all(len(p.labels) <= piece for p in cold)
    assert [piece.offset for piece in cold] == list(np.cumsum([0] + [len(p.labels) for p in cold[:-1]]))
    chunks = list(data_blocks(cold))
    assert len(chunks) > 1 and all(len(c.labels) == chunk for c in chunks[:-1])
    for c in chunks:
        if c.label_sets is not None:
            assert c.provenance["sha256"] == content_sha256(c.images, c.labels, c.label_sets)
    assert [p for piece in cold for p in piece.provenance["unreadable_files"] if not ends_chunk(piece)] == []
    monkeypatch.setattr(folders, "decode", lambda *args: pytest.fail("a warm stream decoded an image"))
    warm = list(benchmark.stream(split, 100, ArrayCache(tmp_path / "cache"), PRE))
    assert [(p.offset, len(p.labels), p.provenance) for p in warm] == [(p.offset, len(p.labels), p.provenance)
                                                                       for p in cold]
    assert np.array_equal(joined(warm).images, joined(cold).images)


def test_a_split_of_one_chunk_is_hashed_as_a_whole_whatever_its_pieces(root, tmp_path, monkeypatch):
    import harness.data.imagenet
    from harness.data.base import content_sha256
    from harness.stream import ends_chunk

    val_tree(root)
    monkeypatch.setattr(harness.data.imagenet, "PIECE_SAMPLES", 3)
    pieces = list(get_benchmark("imagenet", root).stream("val", 100, ArrayCache(tmp_path / "cache"), PRE))
    assert len(pieces) > 1 and [ends_chunk(piece) for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    order = folders.balanced_order(harness.data.imagenet.load_val(root).samples)
    [whole] = folders.decode_pieces(order, 100, 100, folders.Decoding(PRE))
    label_sets = folders.padded_label_sets(whole.label_sets, per_frame=False)
    assert pieces[-1].provenance["sha256"] == content_sha256(whole.images, folders.sample_labels(label_sets),
                                                              label_sets)


def test_a_chunk_whose_last_samples_do_not_decode_ends_at_its_last_decoded_piece():
    """Frame sequences with labels per frame: the decoder's trailing empty piece (only unreadable files left)
    makes no piece of its own; its files and count go to the chunk, which ends at the piece before."""
    from harness.data.folders import DecodedPiece
    from harness.data.imagenet import _ChunkPieces
    from harness.stream import ends_chunk

    frames = np.zeros((2, 3, PRE.size, PRE.size, 3), np.uint8)
    sets = [((1,), (1, 2), (1,)), ((4,), (4,), (5,))]
    decoded = [DecodedPiece(frames, sets, [], 2),
               DecodedPiece(np.zeros((0, 1, PRE.size, PRE.size, 3), np.uint8), [], ["bad/000001.JPEG"], 3)]
    stored = {}
    maker = _ChunkPieces({"split": "vid-pm1"}, None, keep_sets=True, per_frame=True)
    pieces = maker.decoded(iter(decoded), 3, 10, lambda arrays, seconds: stored.update(arrays) or arrays)
    handed = list(pieces)
    assert len(handed) == 1 and ends_chunk(handed[0]) and handed[0].offset == 10
    assert handed[0].provenance["unreadable_files"] == ["bad/000001.JPEG"] and int(stored["consumed"][0]) == 3
    assert handed[0].label_sets.shape == (2, 3, 2) and handed[0].labels.tolist() == [1, 4]
