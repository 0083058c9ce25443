"""Acceptance of the seven natural shifts on their real release formats: on the miniature trees of
imagenet_trees.py, `pytest -m natural --model torchvision:resnet18@<local weights> --data-root=<tree> --strict-data`
measures every case (none not run, none an error) with n the planted images or kept anchors, each shift over a
class subset with its `val-on-<shift>-classes` accuracy, which the report's effective robustness uses."""
import pytest
import torch

from imagenet_trees import natural_shift_trees
from suite_helpers import read_json, run_suite

PLANTED = {"v2": 2, "sketch": 2, "rendition": 2, "imagenet-a": 2, "objectnet": 4, "vid-pm0": 3, "vid-pm10": 3,
           "ytbb-pm0": 2, "ytbb-pm10": 2}
ON_CLASSES = {"rendition": ("val-on-imagenet-r-classes", 2), "imagenet-a": ("val-on-imagenet-a-classes", 2),
              "objectnet": ("val-on-objectnet-classes", 3), "vid-pm0": ("val-on-vid-robust-classes", 4),
              "vid-pm10": ("val-on-vid-robust-classes", 4), "ytbb-pm0": ("val-on-ytbb-robust-classes", 3),
              "ytbb-pm10": ("val-on-ytbb-robust-classes", 3)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torchvision

    tmp = tmp_path_factory.mktemp("natural")
    natural_shift_trees(tmp / "data")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp / "resnet18.pth")
    done = run_suite("--model", f"torchvision:resnet18@{tmp / 'resnet18.pth'}", f"--data-root={tmp / 'data'}",
                     "-m", "natural", "--strict-data", "-n", "0", "--update-baselines",
                     f"--baselines-dir={tmp / 'baselines'}", f"--report-dir={tmp / 'reports'}",
                     f"--cache-dir={tmp / 'cache'}", timeout=600)
    return done, read_json(tmp / "reports" / "latest.json")


def test_every_natural_case_of_all_seven_shifts_is_measured_on_the_real_formats(run):
    done, report = run
    assert done.returncode == 0, done.stdout[-4000:]
    cases = {case["setting"]["name"]: case for case in report["cases"]}
    assert {name: case["status"] for name, case in cases.items()} == {name: "recorded" for name in PLANTED}
    assert {name: case["n"] for name, case in cases.items()} == PLANTED
    assert report["run"]["complete"] is True


def test_each_class_subset_shift_measures_val_on_its_classes_for_effective_robustness(run):
    _, report = run
    cases = {case["setting"]["name"]: case for case in report["cases"]}
    [model] = report["models"]
    effective = report["metrics"][model]["effective_robustness"]  # no clean case ran: only the subset shifts
    for name, (split, n) in ON_CLASSES.items():
        measured = cases[name]["metrics"]["id_on_classes"]
        assert (measured["split"], measured["n"]) == (split, n) and cases[name]["setting"]["id_split"] == split
        assert effective[name]["trend"]["x"] == split and effective[name]["id_accuracy"] == measured["accuracy"]
    for name in ("v2", "sketch"):
        assert "id_on_classes" not in cases[name]["metrics"] and "id_split" not in cases[name]["setting"]
