"""benchmarks/gpu_check.py's generated tree: filing each image under the class the model predicts keeps a valid
ImageNet layout whose labels are those predictions (so the random-weight model is right on every image and a
PGD case attacks all of them)."""
import importlib.util
from pathlib import Path

import numpy as np

from harness.data.imagenet import load_val

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relabelled_tree_lists_each_image_under_its_predicted_class(tmp_path):
    gpu_check = load_script()
    gpu_check.write_tree(tmp_path, 4)
    contents = {p.name: p.read_bytes() for p in (tmp_path / "imagenet" / "val").rglob("*.JPEG")}
    gpu_check.relabel_to_predictions(tmp_path, np.array([0, 1, 2, 3]), np.array([7, 1, 7, 0]))
    listing = load_val(tmp_path)
    labels = {sample.paths[0].name: sample.label_set[0] for sample in listing.samples}
    assert labels == {"ILSVRC2012_val_00000000.JPEG": 7, "ILSVRC2012_val_00000001.JPEG": 1,
                      "ILSVRC2012_val_00000002.JPEG": 7, "ILSVRC2012_val_00000003.JPEG": 0}
    assert {sample.paths[0].name: sample.paths[0].read_bytes() for sample in listing.samples} == contents


def test_the_timed_cases_serve_pixels_from_the_cache_but_compute_every_prediction(tmp_path):
    gpu_check = load_script()
    cache, calls = gpu_check.PixelsOnlyCache(tmp_path), []
    for _ in range(2):
        cache.get_or_compute({"kind": "predictions"}, lambda: calls.append("p") or {"predictions": np.zeros(3)})
        cache.get_or_compute({"kind": "imagenet-split"}, lambda: calls.append("d") or {"images": np.zeros(3)},
                             remember=False, pixels=True)
    assert calls == ["p", "d", "p"]
